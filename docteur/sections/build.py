"""The sections of an image, computed from its PACK and IDX alone: the same PACK and commits give the same
bytes, so docteur-make and docteur reindex write identical images."""

from __future__ import annotations

from collections import namedtuple

from docteur.errors import CorruptImageError
from docteur.git.objects import TREE
from docteur.pack.reader import PackReader
from docteur.sections import PATHS, REFS, paths, refs

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


def build_paths(pack: PackReader, commits: list[bytes]) -> bytes:
    """The path index of `commits`, whose files are entries of `pack`."""
    offsets = {oid: offset for oid, offset, _ in pack.index.entries()}
    ordered = sorted(offsets.values())
    length_of = {a: b - a for a, b in zip(ordered, [*ordered[1:], pack.end], strict=True)}

    def file_info(oid: bytes) -> tuple[int, int, int]:
        offset = offsets.get(oid)
        if offset is None:
            raise CorruptImageError(f"blob {oid.hex()} is missing from the PACK")
        length = length_of[offset]
        return pack.object_size(offset), offset, length if length < 1 << 32 else _NO_LENGTH

    return paths.encode(
        _commits(pack, commits), lambda oid: _tree_of(pack, oid), file_info, paths.LOCATION_PACK
    )


def build_sections(
    pack: PackReader, commits: list[bytes], named: list[tuple[bytes, bytes]]
) -> list[SectionData]:
    """The sections of an image of `commits` (the header's first), whose refs are `named` (full name,
    raw commit id), when they were named (an image of HEAD alone records no ref)."""
    sections = [SectionData(PATHS, 0, build_paths(pack, commits))]
    if named:
        sections.append(SectionData(REFS, 0, refs.encode(named)))
    return sections
