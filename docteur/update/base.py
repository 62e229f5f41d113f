"""docteur-make --base OLD: make NEW so that what OLD already holds keeps OLD's representation, and
updates between successive makes stay small.

OLD's PACK and IDX are put, as a pack, in a scratch repository that borrows the source's objects
(alternates): git pack-objects then finds every object OLD holds in OLD's pack first (a repository's own
packs come before its alternates') and reuses its entry as it is, compressed data and delta (when the
base is packed too). The objects are listed in OLD's PACK order, a changed object where its path's old
version was, so that git writes NEW's entries in OLD's order and the update copies long runs.

The result is still an image git and docteur-verify accept, and reproducible: the same source and the
same OLD give the same NEW.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

from docteur.bytesource import chunks
from docteur.errors import SourceError
from docteur.image.format import PACK_OFFSET
from docteur.source import Snapshot
from docteur.update.parts import ImageParts

if TYPE_CHECKING:
    from docteur.fs.image import Image


class Base:
    """An image to make against; a context manager (it keeps the image open)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        try:
            self.parts = ImageParts(path)
        except (OSError, ValueError) as e:
            raise SourceError(f"--base {path}: {e}") from None
        parts = self.parts
        p = parts.placement
        sha = hashlib.sha1()
        for piece in chunks(parts.source, PACK_OFFSET, p.pack_length - 20):
            sha.update(piece)
        if sha.digest() != parts.index.pack_checksum or not parts.index.checksum_ok():
            parts.close()
            raise SourceError(f"--base {path}: its PACK or IDX checksum is wrong (run docteur-verify)")

    def known(self, oid: bytes) -> bool:
        return self.parts.index.find(oid) >= 0

    def adopt(self, snapshot: Snapshot, workdir: Path) -> Snapshot:
        """The snapshot packed from a scratch repository holding OLD's pack, in OLD's order."""
        repo = workdir / "base.git"
        packs = repo / "objects" / "pack"
        packs.mkdir(parents=True)
        (repo / "refs").mkdir()
        (repo / "HEAD").write_bytes(b"ref: refs/heads/main\n")
        (repo / "objects" / "info").mkdir()
        borrowed = (Path(snapshot.repo_path) / "objects").resolve()
        (repo / "objects" / "info" / "alternates").write_bytes(bytes(borrowed) + b"\n")
        parts = self.parts
        p = parts.placement
        name = packs / f"pack-{parts.index.pack_checksum.hex()}"
        with name.with_suffix(".pack").open("wb") as out:
            for piece in chunks(parts.source, PACK_OFFSET, p.pack_length):
                out.write(piece)
        name.with_suffix(".idx").write_bytes(bytes(parts.source.read(p.idx_offset, p.idx_length)))
        objects = self._in_old_order(snapshot.objects)
        return dataclasses.replace(snapshot, repo_path=str(repo), objects=objects, recompress=False)

    def _in_old_order(self, objects: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        """`objects` sorted by where OLD has them: an object OLD holds at its OLD ordinal, a new one just
        after its path's old version (the commit after OLD's), else after the object listed before it."""
        import docteur

        parts = self.parts
        keys: list[tuple[int, int, int]] = []
        previous = (-1, 0)
        with docteur.open(self.path) as img:
            for i, (hexid, path) in enumerate(objects):
                k = parts.ordinal_of(bytes.fromhex(hexid.decode()))
                if k >= 0:
                    previous = (k, 0)
                else:
                    there = img.commit if i == 0 else self._at_path(img, path)
                    k = parts.ordinal_of(bytes.fromhex(there)) if there else -1
                    previous = (k, 1) if k >= 0 else (previous[0], 2)
                keys.append((*previous, i))
        return [objects[i] for *_, i in sorted(keys)]

    @staticmethod
    def _at_path(img: Image, path: bytes) -> str | None:
        try:
            return img.stat(path.decode("utf-8", "surrogateescape")).oid
        except (FileNotFoundError, NotADirectoryError, UnicodeDecodeError):
            return None

    def close(self) -> None:
        self.parts.close()

    def __enter__(self) -> Base:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
