"""Path layout of a Git tree in a datrie trie, built lazily one directory at a time.

Opening an image costs nothing per file: a directory's tree object is parsed, and its children inserted in
the trie, the first time a path below it is looked up. Git names are bytes, not always UTF-8, and datrie keys
are strings over a declared alphabet: a path's bytes are mapped one-to-one onto U+0001..U+00FF (latin-1), the
only encoding that stores every Git path (Git paths never contain NUL).
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import NamedTuple

import datrie

from docteur.git.objects import MODE_DIR, MODE_GITLINK, TreeEntry

ALPHABET = [("\x01", "\xff")]


class Entry(NamedTuple):
    mode: int
    oid: bytes


def is_dir(mode: int) -> bool:
    # An uninitialised submodule (gitlink) shows as an empty directory, as in a fresh checkout.
    return mode in (MODE_DIR, MODE_GITLINK)


def shown(path: bytes) -> str:
    return "/" + path.decode("utf-8", "surrogateescape")


def normalize(path: str | bytes) -> bytes:
    """'/a//b/./c/../d' -> b'a/b/d'; '..' never climbs above the root."""
    raw = path.encode("utf-8", "surrogateescape") if isinstance(path, str) else path
    parts: list[bytes] = []
    for part in raw.split(b"/"):
        if part == b"..":
            if parts:
                parts.pop()
        elif part and part != b".":
            parts.append(part)
    return b"/".join(parts)


class Layout:
    def __init__(self, root: bytes, load_tree: Callable[[bytes], list[TreeEntry]]) -> None:
        self.root = Entry(MODE_DIR, root)
        self._load_tree = load_tree
        self._trie = datrie.Trie(ranges=ALPHABET)
        self._children: dict[bytes, list[TreeEntry]] = {}

    def lookup(self, path: bytes) -> Entry:
        """The entry at a normalized path; FileNotFoundError / NotADirectoryError as the OS would."""
        if not path:
            return self.root
        key = path.decode("latin-1")
        entry = self._trie.get(key)
        if entry is not None:
            return entry
        parent = path.rpartition(b"/")[0]
        if parent not in self._children:
            self.children(parent)
            entry = self._trie.get(key)
            if entry is not None:
                return entry
        raise FileNotFoundError(errno.ENOENT, "No such file or directory in the image", shown(path))

    def children(self, path: bytes) -> list[TreeEntry]:
        """Entries of the directory at `path`, in Git order."""
        listed = self._children.get(path)
        if listed is not None:
            return listed
        entry = self.lookup(path)
        if not is_dir(entry.mode):
            raise NotADirectoryError(errno.ENOTDIR, "Not a directory", shown(path))
        listed = self._load_tree(entry.oid) if entry.mode == MODE_DIR else []
        prefix = path.decode("latin-1") + "/" if path else ""
        trie = self._trie
        for child in listed:
            trie[prefix + child.name.decode("latin-1")] = Entry(child.mode, child.oid)
        self._children[path] = listed
        return listed
