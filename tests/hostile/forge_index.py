"""Forged path indexes: the honest base image with its paths section rewritten by hand, then sealed (right
section and table checksums), so that only the reader's checks of what the index says stand between the
forgery and the caller. Each case says what an honest reader must give for it."""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

from docteur import zstd
from docteur.bytesource.memory import InMemory
from docteur.git.objects import BLOB, COMMIT, MODE_DIR, MODE_EXEC, MODE_FILE, TREE, object_id, tree_rows
from docteur.image.format import PACK_OFFSET, locate
from docteur.image.writer import write_image
from docteur.pack.reader import PackReader
from docteur.sections import PATHS, paths
from docteur.sections.build import SectionData, build_paths
from docteur.sections.table import REQUIRED, locate_table

from .corpus import Base, Expected

Rewrite = Callable[["Honest"], tuple[list[SectionData], Expected]]


class Honest:
    """The base image taken apart: what a forgery starts from."""

    def __init__(self, base: Base) -> None:
        self.data = base.image.read_bytes()
        self.expected = base.expected
        source = InMemory(self.data)
        self.placement, index = locate(source)
        self.pack = PackReader(source, index, at=PACK_OFFSET, length=self.placement.pack_length)
        table = locate_table(source, self.placement.idx_end)
        assert table is not None and table.find(PATHS) is not None
        self.block_size = table.block_size
        self.section = build_paths(self.pack, [self.placement.commit])
        self.index = paths.PathIndex(InMemory(self.section), 0, len(self.section))
        self.commits = [(self.placement.commit, self.pack.get(self.placement.commit)[1])]
        self.offsets = {oid: offset for oid, offset, _ in index.entries()}

    def files(self) -> list[bytes]:
        """Paths of regular files with distinct non-empty contents."""
        seen: set[bytes] = set()
        found = []
        for path, node in sorted(self.expected.nodes.items()):
            if node.mode in (MODE_FILE, MODE_EXEC) and node.content and node.content not in seen:
                seen.add(node.content)
                found.append(path)
        return found

    def blob(self, path: bytes) -> bytes:
        return object_id(BLOB, self.expected.nodes[path].content)

    def encode(
        self,
        file_info: Callable[[bytes, tuple[int, int, int]], tuple[int, int, int]] | None = None,
        tree_of: Callable[[bytes, bytes], bytes] | None = None,
    ) -> bytes:
        """The paths section again, with each file's columns and each tree's bytes passed through the
        given rewrites (oid, honest value) -> forged value."""
        ends = sorted(self.offsets.values())
        length_of = dict(zip(ends, [*ends[1:], self.pack.end], strict=True))

        def info(oid: bytes) -> tuple[int, int, int]:
            at = self.offsets[oid]
            honest = (self.pack.object_size(at), at, length_of[at] - at)
            return honest if file_info is None else file_info(oid, honest)

        def tree(oid: bytes) -> bytes:
            data = self.pack.get(oid)[1]
            return data if tree_of is None else tree_of(oid, data)

        return paths.encode(self.commits, tree, info, paths.LOCATION_PACK)

    def dir_pointer(self, section: bytes, path: bytes) -> int:
        """Where, in `section`, the pointer to directory `path`'s record lies."""
        index = paths.PathIndex(InMemory(section), 0, len(section))
        data, root = index.root(self.placement.commit)  # type: ignore[misc]
        directory = index.directory(root.record, bytes.fromhex(data[5:45].decode()))
        parent_at = root.record[0]
        *parents, name = path.split(b"/")
        for part in parents:
            i = directory.find(part)
            parent_at = directory.children[i][0]
            directory = index.directory(directory.children[i], directory.rows[i][2])
        i = directory.find(name)
        k = sorted(directory.children).index(i)
        return parent_at + paths.RECORD_HEAD.size + paths.POINTER.size * k

    def write(self, path: Path, sections: list[SectionData]) -> None:
        p = self.placement
        idx = self.data[p.idx_offset : p.idx_end]
        write_image(
            path, p.commit, (InMemory(self.data), PACK_OFFSET, p.pack_length), idx, self.block_size, sections
        )


def _section(data: bytes) -> list[SectionData]:
    return [SectionData(PATHS, 0, data)]


def _forged(honest: Honest, *, opens: bool = True) -> Expected:
    """What reading a forged index must give: every path its honest answer or a CorruptImageError (the
    trees and objects are genuine: only what the index says of them lies), and a rejection by verify."""
    return Expected(honest.expected.nodes, verify_ok=False, opens=opens)


def swapped_locations(honest: Honest) -> tuple[list[SectionData], Expected]:
    """Two files point at each other's objects: each would serve the other's bytes."""
    a, b = honest.files()[:2]
    other = {honest.blob(a): honest.blob(b), honest.blob(b): honest.blob(a)}

    def swap(oid: bytes, value: tuple[int, int, int]) -> tuple[int, int, int]:
        return value if oid not in other else (value[0], honest.offsets[other[oid]], 0)

    return _section(honest.encode(swap)), _forged(honest)


def wrong_size(honest: Honest) -> tuple[list[SectionData], Expected]:
    target = honest.files()[0]
    oid = honest.blob(target)
    section = honest.encode(lambda o, v: (v[0] + 1, v[1], v[2]) if o == oid else v)
    return _section(section), _forged(honest)


def short_extent(honest: Honest) -> tuple[list[SectionData], Expected]:
    target = honest.files()[0]
    oid = honest.blob(target)
    section = honest.encode(lambda o, v: (v[0], v[1], 3) if o == oid else v)
    return _section(section), _forged(honest)


def location_outside(honest: Honest) -> tuple[list[SectionData], Expected]:
    target = honest.files()[0]
    oid = honest.blob(target)
    section = honest.encode(lambda o, v: (v[0], (1 << 40), v[2]) if o == oid else v)
    return _section(section), _forged(honest)


def _subdirs(honest: Honest) -> list[bytes]:
    return sorted(p for p, n in honest.expected.nodes.items() if n.mode == MODE_DIR)


def pointer_outside(honest: Honest) -> tuple[list[SectionData], Expected]:
    target = _subdirs(honest)[0]
    section = bytearray(honest.section)
    at = honest.dir_pointer(honest.section, target)
    struct.pack_into("<QI", section, at, len(section) + 100, 64)
    return _section(bytes(section)), _forged(honest)


def pointers_swapped(honest: Honest) -> tuple[list[SectionData], Expected]:
    """Two directories point at each other's records: each would list the other's entries."""
    a, b = [p for p in _subdirs(honest) if b"/" not in p][:2]
    section = bytearray(honest.section)
    pa, pb = honest.dir_pointer(honest.section, a), honest.dir_pointer(honest.section, b)
    section[pa : pa + 12], section[pb : pb + 12] = section[pb : pb + 12], section[pa : pa + 12]
    return _section(bytes(section)), _forged(honest)


def _tree_rewrite(honest: Honest, path: bytes, change: Callable[[bytes], bytes]) -> bytes:
    """The section with the record of directory `path` holding `change(its tree)` (a tree the encoder
    would refuse): a new record appended, its pointers copied, the parent's pointer moved to it."""
    section = bytearray(honest.section)
    pointer = honest.dir_pointer(honest.section, path)
    at, length = struct.unpack_from("<QI", section, pointer)
    record = honest.section[at : at + length]
    frame_length, subdirs = paths.RECORD_HEAD.unpack_from(record)
    head = record[: len(record) - frame_length]
    payload = zstd.decompress(record[len(head) :], 1 << 24)
    _, tree_length = paths.PAYLOAD_HEAD.unpack_from(payload)
    tree = payload[8 : 8 + tree_length]
    forged = change(tree)
    assert len(forged) == len(tree)
    frame = zstd.ZstdCompressor(write_content_size=True).compress(
        payload[:8] + forged + payload[8 + tree_length :]
    )
    new = paths.RECORD_HEAD.pack(len(frame), subdirs) + head[paths.RECORD_HEAD.size :] + frame
    struct.pack_into("<QI", section, pointer, len(section), len(new))
    return bytes(section + new)


def tree_mode_changed(honest: Honest) -> tuple[list[SectionData], Expected]:
    """A record's tree says 100755 where the commit's tree says 100644."""
    section = _tree_rewrite(honest, b"src", lambda tree: tree.replace(b"100644 main.py", b"100755 main.py"))
    return _section(section), _forged(honest)


def tree_unsorted(honest: Honest) -> tuple[list[SectionData], Expected]:
    """A record's tree lists its entries in another order (the records' columns follow)."""

    def reorder(tree: bytes) -> bytes:
        rows = [m + b" " + n + b"\0" + o for m, n, o in tree_rows(tree, object_id(TREE, tree))[0]]
        return b"".join(reversed(rows))

    return _section(_tree_rewrite(honest, b"src", reorder)), _forged(honest)


def commit_copy(honest: Honest) -> tuple[list[SectionData], Expected]:
    """The index's copy of the header's commit names another tree."""
    section = bytearray(honest.section)
    root = honest.index.roots[0]
    section[root.commit_at + 5] ^= 1  # a hex digit of the tree id
    return _section(bytes(section)), _forged(honest, opens=False)


def other_commit(honest: Honest) -> tuple[list[SectionData], Expected]:
    """The index holds another commit only: the reader parses the trees, and every answer is right."""
    _, content = honest.commits[0]
    forged = content.replace(b"\n\n", b"\n\nnot the header's commit ", 1)
    other = paths.encode(
        [(object_id(COMMIT, forged), forged)],
        lambda oid: honest.pack.get(oid)[1],
        lambda oid: (0, 0, 0),
        paths.LOCATION_PACK,
    )
    return _section(other), _forged(honest)


def unknown_required(honest: Honest) -> tuple[list[SectionData], Expected]:
    sections = [*_section(honest.section), SectionData(99, REQUIRED, b"from the future")]
    return sections, _forged(honest, opens=False)


CASES: dict[str, Rewrite] = {
    "index-swapped-locations": swapped_locations,
    "index-wrong-size": wrong_size,
    "index-short-extent": short_extent,
    "index-location-outside": location_outside,
    "index-pointer-outside": pointer_outside,
    "index-pointers-swapped": pointers_swapped,
    "index-tree-mode-changed": tree_mode_changed,
    "index-tree-unsorted": tree_unsorted,
    "index-commit-copy": commit_copy,
    "index-other-commit": other_commit,
    "index-unknown-required-section": unknown_required,
}
# Cases whose image must not open at all: the oracle reads nothing back from them.
UNOPENED = frozenset({"index-commit-copy", "index-unknown-required-section"})


def build(base: Base, name: str, path: Path) -> Expected:
    """Write forged case `name` to `path` and return what reading it must give."""
    honest = Honest(base)
    sections, expected = CASES[name](honest)
    honest.write(path, sections)
    return expected
