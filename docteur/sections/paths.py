"""The path index section: every directory of the indexed commits, as a record read in place.

    section   header: magic b"DTPI", version u16, location kind u16, roots u32, zero u32
              roots, sorted by commit id: commit id [20], commit at u64, commit length u32,
                  record at u64, record length u32, subdirectories u32
              each root's commit object (its raw content), then the directory records
    record    payload length u32, subdirectories u32, then one pointer per subdirectory entry, in tree
              order: record at u64, record length u32; then the payload, one zstd frame of:
    payload   entries n u32, tree length u32, the directory's Git tree object verbatim, then three
              columns in tree order: a u64[n], b u64[n], c u32[n]
                  file or symlink: a = size, and where its object lies: b = PACK offset and c = entry
                      length (0: unknown), or b = first zstd frame and c = offset in it (zstd images)
                  directory: c = its own number of subdirectories (a = b = 0)
                  submodule: zeros

Every integer is little-endian; offsets are from the section's start. Records are written breadth first
(the roots, then what they hold, level by level: a directory's subdirectories side by side), once per
distinct tree: a lookup reads the records of the directories on its path, the first levels of which
lie together at the section's start, and nothing else.

The index is derived data, never trusted: a commit copy must hash to the id that names it, and a record
to the tree id its parent's (verified) tree gives, so the names, modes and object ids served are those of
the commit's trees. Sizes and locations are checked when a file is read: its content must hash to the
tree's id for it and have the size the index gives.
"""

from __future__ import annotations

import bisect
import struct
from collections import OrderedDict, namedtuple
from collections.abc import Callable, Iterator

from docteur import zstd
from docteur.bytesource import ByteSource
from docteur.errors import CorruptImageError
from docteur.git.objects import COMMIT, MODE_DIR, MODE_GITLINK, TREE, TreeRow, object_id, tree_rows

MAGIC = b"DTPI"
VERSION = 1
HEAD = struct.Struct("<4sHHII")
ROOT = struct.Struct("<20sQIQII")
RECORD_HEAD = struct.Struct("<II")
POINTER = struct.Struct("<QI")
PAYLOAD_HEAD = struct.Struct("<II")
LOCATION_PACK = 0  # files are PACK entries
LOCATION_FRAMES = 1  # files are in zstd frames
MAX_ROOTS = 1 << 16
# A record's payload is its tree plus 20 bytes an entry (itself at least 22 bytes of tree): it may not
# claim more than this many bytes per compressed byte, which no honest record comes near.
_MAX_RATIO = 1024
_DIR_TEXT = b"%o" % MODE_DIR
_GITLINK_TEXT = b"%o" % MODE_GITLINK


Ref = tuple[int, int]  # where a record lies in the section: (at, length)


class Root(namedtuple("Root", "commit commit_at commit_length record subdirs")):
    __slots__ = ()
    commit: bytes
    commit_at: int
    commit_length: int
    record: Ref
    subdirs: int


class Directory:
    """One verified directory: its tree's rows in Git order, and the index's columns beside them."""

    __slots__ = ("a", "b", "c", "children", "keys", "oid", "rows")

    def __init__(
        self,
        oid: bytes,
        rows: list[TreeRow],
        keys: list[bytes],
        columns: tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]],
        children: dict[int, Ref],
    ) -> None:
        """`children` maps each subdirectory's entry position to where its record lies."""
        self.oid = oid
        self.rows = rows
        self.keys = keys  # what Git orders by: a directory's name with '/' after it
        self.a, self.b, self.c = columns
        self.children = children  # entry position -> the record of that subdirectory

    def find(self, name: bytes) -> int:
        """Position of the entry called `name`, or -1."""
        keys = self.keys
        i = bisect.bisect_left(keys, name)
        if i < len(keys) and keys[i] == name:
            return i
        as_dir = name + b"/"
        i = bisect.bisect_left(keys, as_dir, i)
        return i if i < len(keys) and keys[i] == as_dir else -1


class PathIndex:
    """The path index section of an image, read in place through `source`."""

    def __init__(self, source: ByteSource, offset: int, length: int, *, max_entries: int = 1 << 13) -> None:
        self._source = source
        self._at = offset
        self._length = length
        head = self._read(0, HEAD.size)
        magic, version, self.location, count, zero = HEAD.unpack(head)
        if magic != MAGIC or version != VERSION or zero:
            raise CorruptImageError("path index: not a path index section this docteur reads")
        if self.location not in (LOCATION_PACK, LOCATION_FRAMES) or count > MAX_ROOTS:
            raise CorruptImageError("path index: malformed header")
        table = self._read(HEAD.size, ROOT.size * count)
        self.roots = [Root(*_root_fields(ROOT.unpack_from(table, ROOT.size * i))) for i in range(count)]
        self._max_entries = max_entries
        self._cache: OrderedDict[int, Directory] = OrderedDict()
        self._cached_entries = 0

    def _read(self, at: int, length: int) -> bytes:
        if at < 0 or length < 0 or at + length > self._length:
            raise CorruptImageError("path index: a pointer leads outside the section")
        data = bytes(self._source.read(self._at + at, length))
        if len(data) != length:
            raise CorruptImageError("path index: section is truncated")
        return data

    def root(self, commit: bytes) -> tuple[bytes, Root] | None:
        """The verified commit object `commit` and its root, or None when the index lacks that commit."""
        ids = [r.commit for r in self.roots]
        i = bisect.bisect_left(ids, commit)
        if i == len(ids) or ids[i] != commit:
            return None
        root = self.roots[i]
        data = self._read(root.commit_at, root.commit_length)
        if object_id(COMMIT, data) != commit:
            raise CorruptImageError(f"path index: its copy of commit {commit.hex()} is not that commit")
        return data, root

    def directory(self, ref: Ref, tree: bytes) -> Directory:
        """The record at `ref`, which must be tree `tree` (CorruptImageError otherwise)."""
        at = ref[0]
        found = self._cache.get(at)
        if found is not None and found.oid == tree:
            self._cache.move_to_end(at)
            return found
        loaded = self._load(ref, tree)
        self._cached_entries += len(loaded.rows)
        self._cache[at] = loaded
        while self._cached_entries > self._max_entries and len(self._cache) > 1:
            _, old = self._cache.popitem(last=False)
            self._cached_entries -= len(old.rows)
        return loaded

    def _load(self, ref: Ref, tree: bytes) -> Directory:
        raw = self._read(*ref)
        if len(raw) < RECORD_HEAD.size:
            raise CorruptImageError("path index: truncated record")
        frame_length, subdirs = RECORD_HEAD.unpack_from(raw)
        pointers_end = RECORD_HEAD.size + POINTER.size * subdirs
        if pointers_end + frame_length != len(raw):
            raise CorruptImageError("path index: record lengths do not add up")
        payload = self._decompress(raw[pointers_end:], frame_length * _MAX_RATIO + (1 << 16))
        if len(payload) < PAYLOAD_HEAD.size:
            raise CorruptImageError("path index: truncated record payload")
        n, tree_length = PAYLOAD_HEAD.unpack_from(payload)
        data = payload[PAYLOAD_HEAD.size : PAYLOAD_HEAD.size + tree_length]
        if PAYLOAD_HEAD.size + tree_length + 20 * n != len(payload):
            raise CorruptImageError("path index: record payload lengths do not add up")
        if object_id(TREE, data) != tree:
            raise CorruptImageError(f"path index: the record of tree {tree.hex()} holds another tree")
        rows, names, keys = tree_rows(data, tree)
        if len(rows) != n:
            raise CorruptImageError(f"path index: the record of tree {tree.hex()} has {n} entries")
        columns_at = PAYLOAD_HEAD.size + tree_length
        columns = (
            struct.unpack_from(f"<{n}Q", payload, columns_at),
            struct.unpack_from(f"<{n}Q", payload, columns_at + 8 * n),
            struct.unpack_from(f"<{n}I", payload, columns_at + 16 * n),
        )
        # tree_rows gives the names themselves as keys when no entry is a directory.
        dirs = [] if keys is names else [i for i, row in enumerate(rows) if row[0] == _DIR_TEXT]
        if len(dirs) != subdirs:
            raise CorruptImageError(f"path index: the record of tree {tree.hex()} has {subdirs} pointers")
        children = dict(zip(dirs, POINTER.iter_unpack(raw[RECORD_HEAD.size : pointers_end]), strict=True))
        return Directory(tree, rows, list(keys), columns, children)

    def _decompress(self, frame: bytes, limit: int) -> bytes:
        """A zstd frame's content, refusing one that declares no size or more than `limit` (zstd bombs)."""
        try:
            declared = zstd.frame_content_size(frame)
            if declared < 0 or declared > limit:
                raise CorruptImageError("path index: a record declares an unbounded or oversized payload")
            data = zstd.decompress(frame, declared)
        except zstd.ZstdError as e:
            raise CorruptImageError(f"path index: a record does not decompress: {e}") from None
        if len(data) != declared:
            raise CorruptImageError("path index: a record decompresses to another size than it declares")
        return data


def _root_fields(fields: tuple[bytes, int, int, int, int, int]) -> tuple[bytes, int, int, Ref, int]:
    commit, commit_at, commit_length, record_at, record_length, subdirs = fields
    return commit, commit_at, commit_length, (record_at, record_length), subdirs


# -- writing ---------------------------------------------------------------------------------------------

FileInfo = Callable[[bytes], tuple[int, int, int]]  # blob id -> (size, b, c) as the columns hold them


def encode(
    commits: list[tuple[bytes, bytes]],
    tree_of: Callable[[bytes], bytes],
    file_info: FileInfo,
    location: int,
    level: int = 9,
) -> bytes:
    """The section for these commits, given as (id, content): `tree_of` gives a tree object's content,
    `file_info` a blob's columns. The same commits, in any order, give the same bytes."""
    commits = sorted(commits)
    order, parsed = trees_in_order(commits, tree_of)
    compressor = zstd.ZstdCompressor(level=level, write_content_size=True, write_checksum=False)
    subdirs = {oid: sum(1 for row in rows if row[0] == _DIR_TEXT) for oid, (_, rows) in parsed.items()}

    def columns(mode: bytes, child: bytes) -> tuple[int, int, int]:
        if mode == _DIR_TEXT:
            return 0, 0, subdirs[child]
        return (0, 0, 0) if mode == _GITLINK_TEXT else file_info(child)

    frames: dict[bytes, bytes] = {}
    for oid in order:
        data, rows = parsed[oid]
        n = len(rows)
        a, b, c = zip(*(columns(mode, child) for mode, _, child in rows), strict=True) if n else ((), (), ())
        payload = b"".join(
            [
                PAYLOAD_HEAD.pack(n, len(data)),
                data,
                struct.pack(f"<{n}Q", *a),
                struct.pack(f"<{n}Q", *b),
                struct.pack(f"<{n}I", *c),
            ]
        )
        frames[oid] = compressor.compress(payload)
    roots_at = HEAD.size + ROOT.size * len(commits)
    at = roots_at + sum(len(content) for _, content in commits)
    refs: dict[bytes, Ref] = {}
    for oid in order:
        length = RECORD_HEAD.size + POINTER.size * subdirs[oid] + len(frames[oid])
        refs[oid] = (at, length)
        at += length
    out = [HEAD.pack(MAGIC, VERSION, location, len(commits), 0)]
    commit_at = roots_at
    for commit, content in sorted(commits):
        tree = _tree_of_commit(content)
        out.append(ROOT.pack(commit, commit_at, len(content), *refs[tree], subdirs[tree]))
        commit_at += len(content)
    out += [content for _, content in sorted(commits)]
    for oid in order:
        _, rows = parsed[oid]
        pointers = [POINTER.pack(*refs[child]) for mode, _, child in rows if mode == _DIR_TEXT]
        out += [RECORD_HEAD.pack(len(frames[oid]), len(pointers)), *pointers, frames[oid]]
    return b"".join(out)


def _tree_of_commit(content: bytes) -> bytes:
    if not content.startswith(b"tree ") or len(content) < 45:
        raise CorruptImageError("a commit to index has no tree")
    return bytes.fromhex(content[5:45].decode("ascii"))


def trees_in_order(
    commits: list[tuple[bytes, bytes]], tree_of: Callable[[bytes], bytes]
) -> tuple[list[bytes], dict[bytes, tuple[bytes, list[TreeRow]]]]:
    """Every distinct tree below the commits, each once, breadth first: the roots, then the directories
    they hold, level by level, a directory's subdirectories side by side."""
    order: list[bytes] = []
    parsed: dict[bytes, tuple[bytes, list[TreeRow]]] = {}
    level = list(dict.fromkeys(_tree_of_commit(content) for _, content in commits))
    while level:
        below: list[bytes] = []
        for oid in level:
            if oid in parsed:
                continue
            data = tree_of(oid)
            rows = tree_rows(data, oid)[0]
            parsed[oid] = (data, rows)
            order.append(oid)
            below.extend(child for mode, _, child in rows if mode == _DIR_TEXT)
        level = below
    return order, parsed


def walk(index: PathIndex, root: Root, tree: bytes) -> Iterator[tuple[bytes, Directory]]:
    """(path, directory) of every directory below `root`, parents first (for checks and tools)."""
    pending = [(b"", root.record, tree)]
    while pending:
        path, ref, oid = pending.pop()
        directory = index.directory(ref, oid)
        yield path, directory
        prefix = path + b"/" if path else b""
        for i in sorted(directory.children, reverse=True):
            _, name, child = directory.rows[i]
            pending.append((prefix + name, directory.children[i], child))
