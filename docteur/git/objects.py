"""Git objects as raw bytes: hashing, tree and commit parsing and encoding.

The reader runs inside small guests, so this module depends on the standard library only.
"""

from __future__ import annotations

import hashlib
import re
from collections import namedtuple

from docteur.errors import CorruptImageError

# Type numbers as stored in a PACK entry header.
COMMIT, TREE, BLOB, TAG = 1, 2, 3, 4
OFS_DELTA, REF_DELTA = 6, 7
TYPE_NAMES = {COMMIT: b"commit", TREE: b"tree", BLOB: b"blob", TAG: b"tag"}

MODE_FILE = 0o100644
MODE_EXEC = 0o100755
MODE_LINK = 0o120000
MODE_DIR = 0o40000
MODE_GITLINK = 0o160000
VALID_MODES = frozenset({MODE_FILE, MODE_EXEC, MODE_LINK, MODE_DIR, MODE_GITLINK})


def object_id(kind: int, data: bytes | memoryview) -> bytes:
    """The raw 20-byte SHA-1 of an object, as Git computes it."""
    h = hashlib.sha1(b"%s %d\0" % (TYPE_NAMES[kind], len(data)))
    h.update(data)
    return h.digest()


# Records are collections.namedtuple subclasses, not typing.NamedTuple or dataclasses: importing typing
# and dataclasses (and building dataclass methods) took a third of the reader's start-up in the guest.
class TreeEntry(namedtuple("TreeEntry", "name mode oid")):
    __slots__ = ()
    name: bytes
    mode: int
    oid: bytes  # raw 20-byte id


# mode SP name NUL 20-byte id; names may hold anything but NUL here, their rules are checked apart.
_TREE_ENTRY = re.compile(rb"([0-7]{1,7}) ([^\0]*)\0(.{20})", re.S)
MODE_OF_TEXT = {b"%o" % mode: mode for mode in VALID_MODES}  # as a tree spells each mode
_DIR_TEXT = b"%o" % MODE_DIR
_BAD_NAMES = frozenset({b"", b".", b".."})
_new_tuple = tuple.__new__  # builds a TreeEntry without NamedTuple's Python-level __new__ (2x faster)


TreeRow = tuple[bytes, bytes, bytes]  # (mode as the tree spells it, name, raw id)


def tree_rows(
    data: bytes, oid: bytes | str
) -> tuple[list[TreeRow], tuple[bytes, ...], tuple[bytes, ...] | list[bytes]]:
    """The (mode text, name, raw id) rows of tree `oid` (raw or hex), its names column and its sort keys
    (a directory's name with '/' after it), refusing (CorruptImageError) any tree tree_problems would
    flag.

    The reader's hot path: no record is built per entry, and the checks run on whole columns (sets, joins,
    a sort of sorted data) in C rather than entry by entry.
    """
    rows = _TREE_ENTRY.findall(data)
    modes, names, _ = zip(*rows, strict=True) if rows else ((), (), ())
    joined = b"\0".join(names)
    # findall skips what does not match: the entries must cover the object exactly.
    if len(b"".join(modes)) + len(joined) + 21 * len(rows) + bool(rows) != len(data):
        raise CorruptImageError(f"tree {_hex(oid)}: malformed tree object")
    keys = names
    if _DIR_TEXT in modes:  # a directory sorts as if its name ended with '/'
        keys = [n + b"/" if m == _DIR_TEXT else n for m, n in zip(modes, names, strict=True)]
    well_formed = (
        MODE_OF_TEXT.keys() >= set(modes)
        and _BAD_NAMES.isdisjoint(names)
        and b"/" not in joined
        and len(set(names)) == len(names)
        and list(keys) == sorted(keys)
    )
    if not well_formed:
        entries = [_new_tuple(TreeEntry, (n, MODE_OF_TEXT.get(m) or int(m, 8), i)) for m, n, i in rows]
        raise CorruptImageError(f"tree {_hex(oid)}: {tree_problems(entries)[0]}")
    return rows, names, keys


def _hex(oid: bytes | str) -> str:
    return oid.hex() if isinstance(oid, bytes) else oid


def entry_of(row: TreeRow) -> TreeEntry:
    """The TreeEntry of a row of tree_rows (whose modes are all valid)."""
    mode, name, oid = row
    return _new_tuple(TreeEntry, (name, MODE_OF_TEXT[mode], oid))


def parse_tree(data: bytes) -> list[TreeEntry]:
    """Split a tree object into entries; raises CorruptImageError on malformed bytes."""
    rows = _TREE_ENTRY.findall(data)
    if sum(len(m) + len(n) + 22 for m, n, _ in rows) != len(data):
        raise CorruptImageError("malformed tree object")
    modes, new = MODE_OF_TEXT, _new_tuple
    return [new(TreeEntry, (name, modes.get(mode) or int(mode, 8), oid)) for mode, name, oid in rows]


def parse_valid_tree(data: bytes, oid: str) -> list[TreeEntry]:
    """parse_tree, refusing (CorruptImageError naming tree `oid`) any tree tree_problems would flag."""
    return list(map(entry_of, tree_rows(data, oid)[0]))


def tree_sort_key(name: bytes, mode: int) -> bytes:
    # Git orders a directory as if its name ended with '/'.
    return name + b"/" if mode == MODE_DIR else name


def encode_tree(entries: list[TreeEntry]) -> bytes:
    ordered = sorted(entries, key=lambda e: tree_sort_key(e.name, e.mode))
    return b"".join(b"%o %s\0%s" % (e.mode, e.name, e.oid) for e in ordered)


def tree_problems(entries: list[TreeEntry]) -> list[str]:
    """What is wrong with a parsed tree: bad names, duplicates, order, modes (empty when well-formed)."""
    problems: list[str] = []
    previous: bytes | None = None
    seen: set[bytes] = set()
    for e in entries:
        shown = e.name.decode("utf-8", "backslashreplace")
        if e.name in (b"", b".", b".."):
            problems.append(f"invalid entry name {shown!r}")
        elif b"/" in e.name or b"\0" in e.name:
            problems.append(f"entry name with '/' or NUL: {shown!r}")
        if e.mode not in VALID_MODES:
            problems.append(f"entry {shown!r} has invalid mode {e.mode:o}")
        key = tree_sort_key(e.name, e.mode)
        if e.name in seen:
            problems.append(f"duplicate entry {shown!r}")
        elif previous is not None and key <= previous:
            problems.append(f"entry {shown!r} is out of order")
        seen.add(e.name)
        previous = key
    return problems


class CommitInfo(
    namedtuple("CommitInfo", "id tree parents author committer author_time commit_time message")
):
    __slots__ = ()
    id: str  # hex
    tree: str  # hex
    parents: list[str]
    author: bytes  # b"Name <email>"
    committer: bytes
    author_time: int  # unix time
    commit_time: int
    message: bytes


def _split_signature(value: bytes) -> tuple[bytes, int]:
    # "Name <email> 1602316800 +0000" -> (b"Name <email>", 1602316800)
    ident, _, rest = value.rpartition(b">")
    fields = rest.split()
    try:
        when = int(fields[0]) if fields else 0
    except ValueError:
        when = 0
    return ident + b">", when


def parse_commit(oid: str, data: bytes) -> CommitInfo:
    header, _, message = data.partition(b"\n\n")
    tree = ""
    parents: list[str] = []
    author = committer = b""
    author_time = commit_time = 0
    for line in header.split(b"\n"):
        key, _, value = line.partition(b" ")
        if key == b"tree":
            tree = value.decode("ascii", "replace")
        elif key == b"parent":
            parents.append(value.decode("ascii", "replace"))
        elif key == b"author":
            author, author_time = _split_signature(value)
        elif key == b"committer":
            committer, commit_time = _split_signature(value)
    if len(tree) != 40 or any(c not in "0123456789abcdef" for c in tree):
        raise CorruptImageError(f"commit {oid} has no valid tree")
    return CommitInfo(oid, tree, parents, author, committer, author_time, commit_time, message)


def peel_tag(data: bytes) -> tuple[str, bytes]:
    """(object id, type name) a tag object points at."""
    target, kind = "", b""
    for line in data.split(b"\n\n", 1)[0].split(b"\n"):
        key, _, value = line.partition(b" ")
        if key == b"object":
            target = value.decode("ascii", "replace")
        elif key == b"type":
            kind = value
    return target, kind
