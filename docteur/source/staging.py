"""Objects written into a scratch bare repository, as one pack, for the packing engine to read like any
repository's: what a directory and an image (docteur convert) give as sources."""

from __future__ import annotations

import zlib
from collections.abc import Callable
from pathlib import Path

from dulwich.repo import Repo

from docteur.git.objects import object_id
from docteur.idx.writer import encode_index
from docteur.pack.writer import PackWriter


class Staging:
    """Add objects once each, in the order the snapshot lists them, then finish() to get the repository.

    Objects are stored uncompressed (the engine compresses them again: cheap here, and the result does
    not depend on how they were staged), unless `known` is given (make --base): then objects it knows are
    not staged at all and the others are deflated as git would, for git to reuse them as they are.
    """

    def __init__(self, workdir: Path, known: Callable[[bytes], bool] | None = None) -> None:
        self.repo = Repo.init_bare(str(workdir / "staging.git"), mkdir=True)
        self._pack_dir = workdir / "staging.git" / "objects" / "pack"
        self._file = (self._pack_dir / "staging.pack").open("w+b")
        self._writer = PackWriter(self._file, level=0 if known is None else zlib.Z_DEFAULT_COMPRESSION)
        self._known = known
        self.hints: dict[bytes, bytes] = {}
        self.order: list[bytes] = []

    def __contains__(self, oid: bytes) -> bool:
        return oid in self.hints

    def add(self, kind: int, data: bytes, hint: bytes, oid: bytes | None = None) -> bytes:
        """Stage an object (once) under a path hint for the delta search; its id (computed unless given,
        for objects already checked against it)."""
        oid = object_id(kind, data) if oid is None else oid
        if oid not in self.hints:
            if self._known is None or not self._known(oid):
                self._writer.add(oid, kind, data)
            self.order.append(oid)
            self.hints[oid] = hint
        return oid

    def finish(self, first: bytes) -> tuple[str, list[tuple[bytes, bytes]]]:
        """The repository's path, and its objects (hex id, hint) with `first` first (git orders a pack's
        commits before the rest)."""
        checksum = self._writer.finish()
        self._file.close()
        name = self._pack_dir / f"pack-{checksum.hex()}"
        (self._pack_dir / "staging.pack").rename(name.with_suffix(".pack"))
        name.with_suffix(".idx").write_bytes(encode_index(self._writer.entries, checksum))
        order = [first, *(oid for oid in self.order if oid != first)]
        return self.repo.controldir(), [(oid.hex().encode(), self.hints[oid]) for oid in order]
