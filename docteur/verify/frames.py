"""The checks of a zstd image's files: every frame decompresses to what the table and its checksum say,
and every blob the path index or the blobs section locates hashes to its id there."""

from __future__ import annotations

from collections.abc import Callable

from docteur.bytesource import ByteSource
from docteur.errors import CorruptImageError
from docteur.git.objects import BLOB, MODE_DIR, MODE_GITLINK, object_id, parse_commit
from docteur.sections import BLOBS, DICTIONARY, FRAMES, PATHS
from docteur.sections.blobs import BlobTable
from docteur.sections.paths import PathIndex, walk
from docteur.sections.table import SectionTable
from docteur.zstd.frames import FramesReader

Location = tuple[int, int, int]
_NOT_FILES = (b"%o" % MODE_DIR, b"%o" % MODE_GITLINK)
MAX_LISTED = 20  # frames or blobs reported one by one; the rest are counted


def check_frames(
    source: ByteSource, table: SectionTable, problem: Callable[[str], None]
) -> dict[bytes, Location]:
    """The blobs of the image found where they are said to be, and whose content hashed to their id."""
    found = table.find(FRAMES)
    if found is None:
        return {}
    dictionary = table.find(DICTIONARY)
    try:
        frames = FramesReader(
            source,
            found.offset,
            found.length,
            dictionary=None if dictionary is None else (dictionary.offset, dictionary.length),
        )
    except CorruptImageError as e:
        problem(str(e))
        return {}
    bad = 0
    for i in range(frames.count):
        try:
            frames.decompress(i)
        except CorruptImageError as e:
            bad += 1
            if bad <= MAX_LISTED:
                problem(f"frame {i}: {e}")
    if bad > MAX_LISTED:
        problem(f"frames: {bad - MAX_LISTED} more frames are damaged")
    located = _located(source, table, problem)
    checked: dict[bytes, Location] = {}
    for oid, where in located.items():
        try:
            data = frames.read(*where)
        except CorruptImageError as e:
            problem(f"blob {oid.hex()}: {e}")
            continue
        if len(data) != where[2] or object_id(BLOB, data) != oid:
            problem(f"blob {oid.hex()}: the content where it is said to lie is not that blob")
            continue
        checked[oid] = where
    return checked


def _located(
    source: ByteSource, table: SectionTable, problem: Callable[[str], None]
) -> dict[bytes, Location]:
    """Every blob the path index's records and the blobs section locate."""
    located: dict[bytes, Location] = {}
    paths = table.find(PATHS)
    if paths is not None:
        try:
            index = PathIndex(source, paths.offset, paths.length, max_entries=1 << 16)
            for root in index.roots:
                commit = index.root(root.commit)
                if commit is None:
                    continue
                tree = bytes.fromhex(parse_commit(root.commit.hex(), commit[0]).tree)
                for _, directory in walk(index, root, tree):
                    for i, (mode, _, oid) in enumerate(directory.rows):
                        if mode not in _NOT_FILES:
                            located.setdefault(oid, (directory.b[i], directory.c[i], directory.a[i]))
        except CorruptImageError as e:
            problem(str(e))
    blobs = table.find(BLOBS)
    if blobs is not None:
        try:
            previous = b""
            for oid, where in BlobTable(source, blobs.offset, blobs.length):
                if oid <= previous:
                    problem("blobs section: its ids are not sorted, or one is listed twice")
                    break
                previous = oid
                if oid in located:
                    problem(f"blobs section: blob {oid.hex()} is one the path index locates already")
                located[oid] = where
        except CorruptImageError as e:
            problem(str(e))
    return located
