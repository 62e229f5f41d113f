"""The path layout of an image with a path index: every lookup a search in the index's records, read in
place; no tree is inflated and no trie is built (nor datrie imported)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator

from docteur.fs.entry import UNKNOWN, Entry, missing, not_a_directory
from docteur.git.objects import MODE_DIR, MODE_GITLINK, MODE_OF_TEXT
from docteur.sections.paths import Directory, PathIndex, Ref, Root

_DIR_TEXT = b"%o" % MODE_DIR
_GITLINK_TEXT = b"%o" % MODE_GITLINK
_RECENT = 64  # directories resolved by path, most recent last: walks and servers ask for the same few
_EMPTY = Directory(b"", [], [], ((), (), ()), {})  # what a submodule holds here
_new_tuple = tuple.__new__  # builds an Entry without namedtuple's Python-level __new__ (2x faster)


def _entry(directory: Directory, i: int) -> Entry:
    mode, name, oid = directory.rows[i]
    if mode == _DIR_TEXT:
        return _new_tuple(Entry, (name, MODE_DIR, oid, 0, UNKNOWN, directory.c[i]))
    if mode == _GITLINK_TEXT:
        return _new_tuple(Entry, (name, MODE_GITLINK, oid, 0, UNKNOWN, 0))
    return _new_tuple(Entry, (name, MODE_OF_TEXT[mode], oid, directory.a[i], directory.b[i], directory.c[i]))


class IndexedLayout:
    """The tree of one indexed commit. Directory entries carry their number of subdirectories in
    `length`; file entries their size and location."""

    def __init__(self, index: PathIndex, root: Root, tree: bytes) -> None:
        self._index = index
        self._root = root
        self.root = Entry(b"", MODE_DIR, tree, 0, UNKNOWN, root.subdirs)
        self._recent: OrderedDict[bytes, Directory] = OrderedDict()

    def _directory(self, path: bytes) -> Directory:
        found = self._recent.get(path)
        if found is not None:
            return found
        index = self._index
        here = index.directory(self._root.record, self.root.oid)
        if path:
            parts = path.split(b"/")
            for depth, name in enumerate(parts):
                i = here.find(name)
                if i < 0:
                    raise missing(b"/".join(parts[: depth + 1]))
                mode, _, oid = here.rows[i]
                if mode == _DIR_TEXT:
                    here = index.directory(here.children[i], oid)
                elif mode == _GITLINK_TEXT:
                    here = _EMPTY
                else:
                    raise not_a_directory(b"/".join(parts[: depth + 1]))
        if len(self._recent) >= _RECENT:
            self._recent.popitem(last=False)
        self._recent[path] = here
        return here

    def lookup(self, path: bytes) -> Entry:
        """The entry at a normalized path; FileNotFoundError / NotADirectoryError as the OS would."""
        if not path:
            return self.root
        parent, _, name = path.rpartition(b"/")
        directory = self._directory(parent)
        i = directory.find(name)
        if i < 0:
            raise missing(path)
        return _entry(directory, i)

    def children(self, path: bytes) -> list[Entry]:
        """Entries of the directory at `path`, in Git order."""
        directory = self._directory(path)
        return [_entry(directory, i) for i in range(len(directory.rows))]

    def files(self, top: bytes) -> Iterator[tuple[bytes, Entry]]:
        """(path, entry) of every file and symlink below the directory `top`, a directory's files before
        those of its subdirectories."""
        index = self._index
        pending: list[tuple[bytes, Directory | tuple[Ref, bytes]]] = [(top, self._directory(top))]
        while pending:
            path, where = pending.pop()
            directory = where if isinstance(where, Directory) else index.directory(*where)
            prefix = path + b"/" if path else b""
            later: list[tuple[bytes, Directory | tuple[Ref, bytes]]] = []
            for i, (mode, name, oid) in enumerate(directory.rows):
                if mode == _DIR_TEXT:
                    later.append((prefix + name, (directory.children[i], oid)))
                elif mode != _GITLINK_TEXT:
                    yield prefix + name, _entry(directory, i)
            pending.extend(reversed(later))
