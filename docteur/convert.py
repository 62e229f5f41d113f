"""docteur convert: an image of one kind made into the other (zlib <-> zstd), atomically.

The image is the source: every commit it holds (its refs' and their history), every tree and every blob
below them, each read and checked against its id, are staged and packed again as docteur-make packs a
directory, so the commits and trees keep their ids and the refs their names. Faster than making from
the source: nothing is read from disk twice or hashed again, and a zstd image's PACK needs no delta
search for its files.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import docteur
from docteur.blocksize import check_block_size
from docteur.compress import check_kind
from docteur.errors import CorruptImageError
from docteur.fs.image import Image
from docteur.git.objects import BLOB, COMMIT, MODE_DIR, MODE_GITLINK, TREE, tree_rows
from docteur.make import SCRATCH_PREFIX, Made, write_snapshot
from docteur.progress import Progress
from docteur.reindex import block_size_of
from docteur.scratch import remove_abandoned, tagged
from docteur.sections import REFS
from docteur.source import Snapshot
from docteur.source.staging import Staging

_DIR_TEXT = b"%o" % MODE_DIR
_GITLINK_TEXT = b"%o" % MODE_GITLINK
_KINDS = {"commit": COMMIT, "tree": TREE, "blob": BLOB}


def _object(img: Image, oid: bytes, kind: int) -> bytes:
    try:
        name, data = img.objects.get(oid.hex())
    except KeyError:
        raise CorruptImageError(f"{img.path}: object {oid.hex()} is missing") from None
    if _KINDS.get(name) != kind:
        raise CorruptImageError(f"{img.path}: object {oid.hex()} is a {name}")
    return data


def _stage(img: Image, staging: Staging, progress: Progress) -> None:
    """Every commit of the image's refs and their history, then each one's tree: a folder, then its
    files and subfolders (the order a directory's staging gives), each object once."""
    commits = {}
    for ref in img.refs:
        for info in img.at(ref).log():
            commits.setdefault(info.id, info)
    for info in commits.values():
        staging.add(COMMIT, _object(img, bytes.fromhex(info.id), COMMIT), b"", bytes.fromhex(info.id))
    for info in commits.values():
        pending = [(bytes.fromhex(info.tree), b"")]
        while pending:
            tree, path = pending.pop()
            if tree in staging:
                continue
            data = _object(img, tree, TREE)
            staging.add(TREE, data, path, tree)
            progress.advance()
            prefix = path + b"/" if path else b""
            subtrees = []
            for mode, name, oid in tree_rows(data, tree)[0]:
                if mode == _DIR_TEXT:
                    subtrees.append((oid, prefix + name))
                elif mode != _GITLINK_TEXT and oid not in staging:
                    staging.add(BLOB, _object(img, oid, BLOB), prefix + name, oid)
                    progress.advance()
            pending.extend(reversed(subtrees))


def _warning(message: str) -> None:
    print(f"docteur-convert: warning: {message}", file=sys.stderr)


def convert(
    image: str | Path,
    output: str | Path,
    *,
    compress: str,
    block_size: int | None = None,
    quiet: bool = True,
    warn: Callable[[str], None] | None = None,
) -> Made:
    """Write `image` as an image of kind `compress` ("zlib" or "zstd") to `output`, atomically; the
    block size is the image's unless `block_size` is given."""
    check_kind(compress)
    if block_size is not None:
        check_block_size(block_size)
    progress = Progress(not quiet)
    remove_abandoned(Path(tempfile.gettempdir()), SCRATCH_PREFIX)
    with docteur.open(image) as img, tempfile.TemporaryDirectory(prefix=tagged(SCRATCH_PREFIX)) as scratch:
        workdir = Path(scratch)
        size_of_blocks = block_size or block_size_of(img.source, img.placement, img.sections)
        progress.start("reading the image")
        staging = Staging(workdir)
        _stage(img, staging, progress)
        progress.finish()
        repo, objects = staging.finish(bytes.fromhex(img.commit))
        named = img.sections is not None and img.sections.find(REFS) is not None
        refs = [(name.encode(), commit.encode()) for name, commit in img.refs.items()] if named else []
        snapshot = Snapshot(repo, img.commit.encode(), objects, recompress=True, refs=refs)
        size = write_snapshot(
            snapshot, Path(output), workdir, size_of_blocks, True, compress, progress, warn or _warning
        )
    return Made(img.commit, len(objects), size)
