"""The sections of an image, computed from its PACK and IDX alone: the same PACK and commits give the same
bytes, so docteur-make and docteur reindex write identical images."""

from __future__ import annotations

from collections import namedtuple

from docteur.errors import CorruptImageError
from docteur.git.objects import TREE
from docteur.pack.reader import PackReader
from docteur.sections import BLOBS, DICTIONARY, FRAMES, PATHS, REFS, blobs, paths, refs
from docteur.sections.table import REQUIRED
from docteur.zstd.frames import Written

_NO_LENGTH = 0  # an entry length that does not fit the column: readers bound the read themselves


class SectionData(namedtuple("SectionData", "kind flags data")):
    __slots__ = ()
    kind: int
    flags: int
    data: bytes


def _tree_of(pack: PackReader, oid: bytes) -> bytes:
    try:
        kind, data = pack.get(oid)
    except KeyError:
        raise CorruptImageError(f"tree {oid.hex()} is missing from the PACK") from None
    if kind != TREE:
        raise CorruptImageError(f"object {oid.hex()} should be a tree")
    return data


def _commits(pack: PackReader, commits: list[bytes]) -> list[tuple[bytes, bytes]]:
    found = []
    for oid in commits:
        try:
            found.append((oid, pack.get(oid)[1]))
        except KeyError:
            raise CorruptImageError(f"commit {oid.hex()} is missing from the PACK") from None
    return found


def check_trees(pack: PackReader, commits: list[bytes]) -> None:
    """Refuse trees the reader would reject ('..', '/', duplicates, bad order or modes), as the index
    build does, for an image made without one."""
    paths.trees_in_order(_commits(pack, commits), lambda oid: _tree_of(pack, oid))


def pack_files(pack: PackReader) -> paths.FileInfo:
    """A blob's columns when the files are the PACK's entries: size, offset, entry length."""
    offsets = {oid: offset for oid, offset, _ in pack.index.entries()}
    ordered = sorted(offsets.values())
    length_of = {a: b - a for a, b in zip(ordered, [*ordered[1:], pack.end], strict=True)}

    def file_info(oid: bytes) -> tuple[int, int, int]:
        offset = offsets.get(oid)
        if offset is None:
            raise CorruptImageError(f"blob {oid.hex()} is missing from the PACK")
        length = length_of[offset]
        return pack.object_size(offset), offset, length if length < 1 << 32 else _NO_LENGTH

    return file_info


def frame_files(locations: dict[bytes, tuple[int, int, int]], used: set[bytes]) -> paths.FileInfo:
    """A blob's columns when the files are in zstd frames: size, frame, offset; `used` collects the
    blobs asked for."""

    def file_info(oid: bytes) -> tuple[int, int, int]:
        found = locations.get(oid)
        if found is None:
            raise CorruptImageError(f"blob {oid.hex()} is missing from the frames")
        used.add(oid)
        frame, offset, size = found
        return size, frame, offset

    return file_info


def build_paths(
    pack: PackReader,
    commits: list[bytes],
    files: paths.FileInfo | None = None,
    location: int = paths.LOCATION_PACK,
) -> bytes:
    """The path index of `commits`, whose trees are in `pack`, and whose files are where `files` says
    (by default, the PACK's entries)."""
    return paths.encode(
        _commits(pack, commits),
        lambda oid: _tree_of(pack, oid),
        pack_files(pack) if files is None else files,
        location,
    )


def build_sections(
    pack: PackReader,
    commits: list[bytes],
    named: list[tuple[bytes, bytes]],
    frames: Written | None = None,
) -> list[SectionData]:
    """The sections of an image of `commits` (the header's first), whose refs are `named` (full name,
    raw commit id), when they were named (an image of HEAD alone records no ref). With `frames`, the
    files' contents are in zstd frames (a zstd image), not in the PACK."""
    if frames is None:
        sections = [SectionData(PATHS, 0, build_paths(pack, commits))]
    else:
        used: set[bytes] = set()
        index = build_paths(pack, commits, frame_files(frames.locations, used), paths.LOCATION_FRAMES)
        sections = [SectionData(PATHS, 0, index)]
    if named:
        sections.append(SectionData(REFS, 0, refs.encode(named)))
    if frames is not None:
        if frames.dictionary is not None:
            sections.append(SectionData(DICTIONARY, REQUIRED, frames.dictionary))
        extra = {oid: where for oid, where in frames.locations.items() if oid not in used}
        if extra:
            sections.append(SectionData(BLOBS, REQUIRED, blobs.encode(extra)))
        # Last: the large one, so the small sections lie near the table (one read for a remote image).
        sections.append(SectionData(FRAMES, REQUIRED, frames.section))
    return sections
