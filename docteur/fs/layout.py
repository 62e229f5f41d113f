"""Path layout of a Git tree, built lazily one directory at a time, with a bounded footprint.

Opening an image costs nothing per file: a directory's tree object is parsed the first time a path in it
is looked up. Loaded directories live in a datrie trie keyed by their path; each maps its children's names
to their rows (mode text, name, raw id) in a dict, made into a TreeEntry only when looked up: building a
record per entry cost as much as parsing the tree, for the one entry a path needs. Only directories go
into the trie: inserting every path cost 5-24 µs per key (measured on 40,000 paths), a dict entry 0.3 µs,
and a directory's names are only ever looked up whole.

The layout holds at most about `max_entries` entries: past that, the least recently used directories are
dropped (and parsed again if needed), so a walk over a huge image stays in bounded memory.

Git names are bytes, not always UTF-8, and datrie keys are strings over a declared alphabet: a path's bytes
are mapped one-to-one onto U+0001..U+00FF (latin-1), the only encoding that stores every Git path (Git paths
never contain NUL). The root's key is "/"; any other directory's is "/" + its path.
"""

from __future__ import annotations

import errno
from collections.abc import Callable

import datrie

from docteur.git.objects import MODE_DIR, MODE_GITLINK, TreeEntry, TreeRow, entry_of

ALPHABET = [("\x01", "\xff")]
DEFAULT_MAX_ENTRIES = 1 << 13  # ~250 bytes each


def is_dir(mode: int) -> bool:
    # An uninitialised submodule (gitlink) shows as an empty directory, as in a fresh checkout.
    return mode in (MODE_DIR, MODE_GITLINK)


def shown(path: bytes) -> str:
    return "/" + path.decode("utf-8", "surrogateescape")


def normalize(path: str | bytes) -> bytes:
    """'/a//b/./c/../d' -> b'a/b/d'; '..' never climbs above the root."""
    raw = path.encode("utf-8", "surrogateescape") if isinstance(path, str) else path
    # Most paths are already normal: no leading, trailing or doubled '/', no component starting with '.'.
    if raw and raw[0] not in b"/." and raw[-1] != 0x2F and b"//" not in raw and b"/." not in raw:
        return raw
    parts: list[bytes] = []
    for part in raw.split(b"/"):
        if part == b"..":
            if parts:
                parts.pop()
        elif part and part != b".":
            parts.append(part)
    return b"/".join(parts)


class _Directory:
    __slots__ = ("names", "used")

    def __init__(self, names: dict[bytes, TreeRow], used: int) -> None:
        self.names = names  # in Git order: dicts keep insertion order
        self.used = used


class Layout:
    def __init__(
        self,
        root: bytes,
        load_tree: Callable[[bytes], tuple[list[TreeRow], tuple[bytes, ...]]],
        max_entries: int = DEFAULT_MAX_ENTRIES,
    ) -> None:
        self.root = TreeEntry(b"", MODE_DIR, root)
        self._load_tree = load_tree
        self._max_entries = max_entries
        self._dirs = datrie.Trie(ranges=ALPHABET)
        self._entries = 0  # entries held by the loaded directories
        self._clock = 0

    def lookup(self, path: bytes) -> TreeEntry:
        """The entry at a normalized path; FileNotFoundError / NotADirectoryError as the OS would."""
        if not path:
            return self.root
        parent, _, name = path.rpartition(b"/")
        row = self._names(parent).get(name)
        if row is None:
            raise _missing(path)
        return entry_of(row)

    def children(self, path: bytes) -> list[TreeEntry]:
        """Entries of the directory at `path`, in Git order."""
        return list(map(entry_of, self._names(path).values()))

    def _names(self, path: bytes) -> dict[bytes, TreeRow]:
        self._clock += 1
        loaded: _Directory | None = self._dirs.get(_key(path))
        if loaded is None:
            loaded = self._load(path)
        loaded.used = self._clock
        return loaded.names

    def _load(self, path: bytes) -> _Directory:
        """Load the directory at `path` and any missing one above it, from the root down (iteratively:
        trees can nest deeper than Python's stack)."""
        parts = path.split(b"/") if path else []
        loaded: _Directory | None = None
        for depth in range(len(parts) + 1):
            here = b"/".join(parts[:depth])
            found: _Directory | None = self._dirs.get(_key(here))
            if found is None:
                entry = self.root
                if loaded is not None:
                    row = loaded.names.get(parts[depth - 1])
                    if row is None:
                        raise _missing(here)
                    entry = entry_of(row)
                if not is_dir(entry.mode):
                    raise NotADirectoryError(errno.ENOTDIR, "Not a directory", shown(here))
                found = self._insert(here, entry)
            loaded = found
        assert loaded is not None
        return loaded

    def _insert(self, path: bytes, entry: TreeEntry) -> _Directory:
        names: dict[bytes, TreeRow] = {}
        if entry.mode == MODE_DIR:
            rows, column = self._load_tree(entry.oid)
            names = dict(zip(column, rows, strict=True))
        self._entries += len(names)
        if self._entries > self._max_entries:
            self._evict(self._max_entries // 2)
        loaded = _Directory(names, self._clock)
        self._dirs[_key(path)] = loaded
        return loaded

    def _evict(self, keep: int) -> None:
        """Drop the least recently used directories until about `keep` entries remain."""
        for key, loaded in sorted(self._dirs.items(), key=lambda item: item[1].used):
            if self._entries <= keep:
                break
            del self._dirs[key]
            self._entries -= len(loaded.names)


def _missing(path: bytes) -> FileNotFoundError:
    return FileNotFoundError(errno.ENOENT, "No such file or directory in the image", shown(path))


def _key(path: bytes) -> str:
    return "/" + path.decode("latin-1")
