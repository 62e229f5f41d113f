"""A view of one commit's tree in an image, with the zipfile-like path API: read/open/listdir/stat/walk.

An Image is the view of its header's commit; Image.at() gives the view of any other commit it holds.
"""

from __future__ import annotations

import errno
import io
from collections import namedtuple
from collections.abc import Iterator

from docteur.errors import CorruptImageError
from docteur.fs.contents import Contents
from docteur.fs.entry import UNKNOWN, Entry, is_dir, normalize, not_a_directory, shown
from docteur.fs.history import diff_trees, history
from docteur.fs.indexed import IndexedLayout
from docteur.git.objects import (
    COMMIT,
    MODE_LINK,
    TREE,
    TYPE_NAMES,
    CommitInfo,
    TreeRow,
    parse_commit,
    tree_rows,
)
from docteur.pack.reader import PackReader

TYPE_CHECKING = False
if TYPE_CHECKING:
    from docteur.fs.layout import TrieLayout

# read_all() gathers this many paths, then reads them in PACK order.
READ_ALL_BATCH = 4096
# Files read by location whose content hashed to its id lately: read again, they are not hashed again.
_CHECKED = 4096


class Stat(namedtuple("Stat", "mode size oid")):
    __slots__ = ()
    mode: int  # 0o100644, 0o100755, 0o120000, 0o40000 (0o160000 for a submodule)
    size: int  # bytes of a file or of a link's target; 0 for a directory
    oid: str  # hex id of the blob or tree


def _name(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


class BlobFile(io.BufferedIOBase):
    """A read-only, seekable binary file over one blob's content."""

    def __init__(self, data: bytes, name: str) -> None:
        super().__init__()
        self._data = data
        self._pos = 0
        self.name = name

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        self._checkClosed()  # type: ignore[attr-defined]
        start = self._pos
        end = len(self._data) if size is None or size < 0 else min(start + size, len(self._data))
        self._pos = max(start, end)
        return self._data[start:end]

    read1 = read

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        chunk = self.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)

    def readline(self, size: int | None = -1) -> bytes:
        self._checkClosed()  # type: ignore[attr-defined]
        end = self._data.find(b"\n", self._pos) + 1 or len(self._data)
        if size is not None and size >= 0:
            end = min(end, self._pos + size)
        line = self._data[self._pos : end]
        self._pos = max(self._pos, end)
        return line

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._checkClosed()  # type: ignore[attr-defined]
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: len(self._data)}[whence]
        if base + offset < 0:
            raise ValueError("negative seek position")
        self._pos = base + offset
        return self._pos

    def tell(self) -> int:
        return self._pos


class View:
    """The tree of commit `info`, read through `layout` (the path index, or the trees parsed into a
    trie) from `pack`. Every object served is checked against the id its commit's trees give."""

    def __init__(
        self,
        info: CommitInfo,
        layout: IndexedLayout | TrieLayout,
        pack: PackReader,
        contents: Contents,
    ) -> None:
        self.info = info
        self.commit = info.id
        self.tree = info.tree
        self._layout = layout
        self._pack = pack
        self._contents = contents  # where files are read from, shared by the views of one image

    @property
    def indexed(self) -> bool:
        """Whether lookups use the image's path index (else its trees are parsed as needed)."""
        return isinstance(self._layout, IndexedLayout)

    @property
    def commit_time(self) -> int:
        return self.info.commit_time

    def __repr__(self) -> str:
        return f"<docteur.View commit={self.commit}>"

    # -- between commits -------------------------------------------------------------------------------

    def _object(self, oid: bytes, kind: int) -> bytes | None:
        try:
            found, data = self._pack.get(oid)
        except KeyError:
            return None
        if found != kind:
            raise CorruptImageError(f"object {oid.hex()} should be a {TYPE_NAMES[kind].decode()}")
        return data

    def _rows(self, oid: bytes) -> list[TreeRow]:
        data = self._object(oid, TREE)
        if data is None:
            raise CorruptImageError(f"tree {oid.hex()} is missing from the image")
        return tree_rows(data, oid)[0]

    def diff(self, base: View) -> list[tuple[str, str]]:
        """What changed from `base` to this view, file by file, as DataKit's diff/ lists it: ("+", path)
        added, ("-", path) removed, ("*", path) modified, in path order. Only the subtrees whose ids
        differ are read."""
        found = diff_trees(self._rows, bytes.fromhex(base.tree), bytes.fromhex(self.tree))
        return [(what, path.decode("utf-8", "surrogateescape")) for what, path in found]

    def log(self, limit: int | None = None) -> Iterator[CommitInfo]:
        """This view's commit and its ancestors that the image holds (all of them with --history),
        newest first, as `git log` lists them."""

        def load(oid: bytes) -> CommitInfo | None:
            data = self._object(oid, COMMIT)
            return None if data is None else parse_commit(oid.hex(), data)

        return history(load, self.info, limit)

    # -- paths ---------------------------------------------------------------------------------------

    def _entry(self, path: str | bytes) -> tuple[bytes, Entry]:
        key = normalize(path)
        return key, self._layout.lookup(key)

    def _blob(self, path: str | bytes) -> tuple[bytes, bytes]:
        key, entry = self._entry(path)
        if is_dir(entry.mode):
            raise IsADirectoryError(errno.EISDIR, "Is a directory", shown(key))
        return key, self._contents.read(key, entry)

    def exists(self, path: str | bytes) -> bool:
        try:
            self._entry(path)
        except (FileNotFoundError, NotADirectoryError):
            return False
        return True

    def stat(self, path: str | bytes) -> Stat:
        """Mode, size and id of a path; a symlink is described itself, not followed."""
        _, entry = self._entry(path)
        return self._stat(entry)

    def _stat(self, entry: Entry) -> Stat:
        if is_dir(entry.mode):
            return Stat(entry.mode, 0, entry.oid.hex())
        if entry.size != UNKNOWN:
            return Stat(entry.mode, entry.size, entry.oid.hex())
        return Stat(entry.mode, self._contents.size(entry), entry.oid.hex())

    def read(self, path: str | bytes) -> bytes:
        """The content of a file (for a symlink: its target, as Git stores it)."""
        return self._blob(path)[1]

    def open(self, path: str | bytes) -> BlobFile:
        key, data = self._blob(path)
        return BlobFile(data, shown(key))

    def readlink(self, path: str | bytes) -> str:
        key, entry = self._entry(path)
        if entry.mode != MODE_LINK:
            raise OSError(errno.EINVAL, "Not a symbolic link", shown(key))
        return _name(self._contents.read(key, entry))

    def subdirectories(self, path: str | bytes) -> int:
        """How many subdirectories the directory `path` holds (its link count is 2 more)."""
        key, entry = self._entry(path)
        if not is_dir(entry.mode):
            raise not_a_directory(key)
        if entry.length != UNKNOWN:  # the path index counts them
            return entry.length
        return sum(1 for child in self._layout.children(key) if is_dir(child.mode))

    def listdir(self, path: str | bytes = "") -> list[str]:
        return [_name(child.name) for child in self._layout.children(normalize(path))]

    def scandir(self, path: str | bytes = "") -> list[tuple[str, Stat]]:
        return [(_name(c.name), self._stat(c)) for c in self._layout.children(normalize(path))]

    def walk(self, top: str | bytes = "") -> Iterator[tuple[str, list[str], list[str]]]:
        """Top-down like os.walk: (dirpath, dirnames, filenames); edit dirnames in place to prune."""
        start = normalize(top)
        if not is_dir(self._layout.lookup(start).mode):
            raise not_a_directory(start)
        pending = [start]
        while pending:
            path = pending.pop()
            dirnames: list[str] = []
            filenames: list[str] = []
            for child in self._layout.children(path):
                (dirnames if is_dir(child.mode) else filenames).append(_name(child.name))
            yield _name(path), dirnames, filenames
            prefix = path + b"/" if path else b""
            pending.extend(prefix + name.encode("utf-8", "surrogateescape") for name in reversed(dirnames))

    def read_all(self, top: str | bytes = "") -> Iterator[tuple[str, bytes]]:
        """(path, content) of every file below `top` (a symlink gives its target), in image order.

        The fastest way to read everything: objects come in the order they lie in the image, so delta
        bases are still cached when their deltas come, and each zstd frame is decompressed once. Paths
        are gathered in batches of `READ_ALL_BATCH` files, each read in image order, so memory stays
        bounded whatever the image size.
        """
        batch: list[tuple[object, bytes, Entry]] = []
        for path, entry in self._layout.files(normalize(top)):
            batch.append((self._contents.order(entry), path, entry))
            if len(batch) >= READ_ALL_BATCH:
                yield from self._read_batch(batch)
                batch = []
        yield from self._read_batch(batch)

    def _read_batch(self, batch: list[tuple[object, bytes, Entry]]) -> Iterator[tuple[str, bytes]]:
        batch.sort(key=lambda item: (item[0], item[1]))
        files = [(path, entry) for _, path, entry in batch]
        for i, data in self._contents.read_many(files):
            yield files[i][0].decode("utf-8", "surrogateescape"), data
