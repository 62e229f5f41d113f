"""The reader: an image opened like a zip archive, with read/open/listdir/stat/walk."""

from __future__ import annotations

import errno
import io
import os
from collections import namedtuple
from collections.abc import Iterator

from docteur.bytesource import ByteSource
from docteur.bytesource.mapped import DEFAULT_MAPPED_BYTES, MappedFile
from docteur.errors import CorruptImageError
from docteur.fs.layout import DEFAULT_MAX_ENTRIES, Layout, is_dir, normalize, shown
from docteur.git.objects import (
    BLOB,
    COMMIT,
    MODE_DIR,
    MODE_EXEC,
    MODE_FILE,
    MODE_LINK,
    TREE,
    CommitInfo,
    TreeEntry,
    TreeRow,
    parse_commit,
    tree_rows,
)
from docteur.image.format import PACK_OFFSET, Placement, locate
from docteur.pack.reader import DEFAULT_CACHE_BYTES, DEFAULT_MAX_OBJECT_SIZE, PackReader
from docteur.pack.store import ObjectStore

# read_all() gathers this many paths, then reads them in PACK order.
READ_ALL_BATCH = 4096
# Modes as tree rows spell them.
_FILE_TEXTS = frozenset(b"%o" % mode for mode in (MODE_FILE, MODE_EXEC, MODE_LINK))
_DIR_TEXT = b"%o" % MODE_DIR


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


class Image:
    """A docteur image opened for reading: a regular file or a raw block device.

    Every length comes from the header and the IDX, never from the file size, so a block device padded
    with zeros (as a VM disk is) reads the same as the file it was copied from.

    Memory stays bounded whatever the image size: `cache_bytes` of inflated objects (repeated reads,
    delta bases) plus the last object too large for them, about `mapped_bytes` of the mapped image
    resident at a time, and `layout_entries` directory entries parsed.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        max_object_size: int = DEFAULT_MAX_OBJECT_SIZE,
        mapped_bytes: int = DEFAULT_MAPPED_BYTES,
        layout_entries: int = DEFAULT_MAX_ENTRIES,
    ) -> None:
        self.path = os.fspath(path)
        self.source: ByteSource = MappedFile(self.path, mapped_bytes=mapped_bytes)
        try:
            self.placement: Placement
            self.placement, index = locate(self.source)
            self._pack = PackReader(
                self.source,
                index,
                at=PACK_OFFSET,
                length=self.placement.pack_length,
                cache_bytes=cache_bytes,
                max_object_size=max_object_size,
            )
            self.commit = self.placement.commit.hex()
            kind, data = self._get(self.placement.commit, "commit")
            if kind != COMMIT:
                raise CorruptImageError(f"header names {self.commit}, which is not a commit")
            self.info: CommitInfo = parse_commit(self.commit, data)
        except BaseException:
            self.close()
            raise
        self.tree = self.info.tree
        self.objects = ObjectStore(self._pack)
        self._layout = Layout(bytes.fromhex(self.tree), self._tree_rows, layout_entries)

    def _get(self, oid: bytes, what: str) -> tuple[int, bytes]:
        try:
            return self._pack.get(oid)
        except KeyError:
            raise CorruptImageError(f"{what} {oid.hex()} is missing from the image") from None

    def _tree_rows(self, oid: bytes) -> tuple[list[TreeRow], tuple[bytes, ...]]:
        kind, data = self._get(oid, "tree")
        if kind != TREE:
            raise CorruptImageError(f"object {oid.hex()} should be a tree")
        return tree_rows(data, oid)

    # -- lifetime ------------------------------------------------------------------------------------

    def close(self) -> None:
        self.source.close()

    def __enter__(self) -> Image:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<docteur.Image {self.path!r} commit={self.commit}>"

    # -- paths ---------------------------------------------------------------------------------------

    def _entry(self, path: str | bytes) -> tuple[bytes, TreeEntry]:
        key = normalize(path)
        return key, self._layout.lookup(key)

    def _blob(self, path: str | bytes) -> tuple[bytes, bytes]:
        key, entry = self._entry(path)
        if is_dir(entry.mode):
            raise IsADirectoryError(errno.EISDIR, "Is a directory", shown(key))
        kind, data = self._get(entry.oid, "blob")
        if kind != BLOB:
            raise CorruptImageError(f"{shown(key)}: object {entry.oid.hex()} should be a blob")
        return key, data

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

    def _stat(self, entry: TreeEntry) -> Stat:
        if is_dir(entry.mode):
            return Stat(entry.mode, 0, entry.oid.hex())
        offset = self._pack.index.lookup(entry.oid)
        if offset is None:
            raise CorruptImageError(f"blob {entry.oid.hex()} is missing from the image")
        return Stat(entry.mode, self._pack.object_size(offset), entry.oid.hex())

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
        return _name(self._blob(key)[1])

    def listdir(self, path: str | bytes = "") -> list[str]:
        return [_name(child.name) for child in self._layout.children(normalize(path))]

    def scandir(self, path: str | bytes = "") -> list[tuple[str, Stat]]:
        return [(_name(c.name), self._stat(c)) for c in self._layout.children(normalize(path))]

    def walk(self, top: str | bytes = "") -> Iterator[tuple[str, list[str], list[str]]]:
        """Top-down like os.walk: (dirpath, dirnames, filenames); edit dirnames in place to prune."""
        start = normalize(top)
        root_entry = self._layout.lookup(start)
        if not is_dir(root_entry.mode):
            raise NotADirectoryError(errno.ENOTDIR, "Not a directory", shown(start))
        # Each pending directory carries the tree ids above it: a forged tree that contains itself is an
        # error, not an endless walk.
        pending: list[tuple[bytes, frozenset[bytes]]] = [(start, frozenset({root_entry.oid}))]
        while pending:
            path, ancestors = pending.pop()
            dirnames: list[str] = []
            filenames: list[str] = []
            subdirs: dict[str, bytes] = {}
            for child in self._layout.children(path):
                name = _name(child.name)
                if is_dir(child.mode):
                    if child.mode == MODE_DIR and child.oid in ancestors:
                        raise CorruptImageError(f"tree {child.oid.hex()} contains itself")
                    dirnames.append(name)
                    subdirs[name] = child.oid
                else:
                    filenames.append(name)
            yield _name(path), dirnames, filenames
            prefix = path + b"/" if path else b""
            for name in reversed(dirnames):
                raw = name.encode("utf-8", "surrogateescape")
                pending.append((prefix + raw, ancestors | {subdirs.get(name, b"")}))

    def read_all(self, top: str | bytes = "") -> Iterator[tuple[str, bytes]]:
        """(path, content) of every file below `top` (a symlink gives its target), in PACK order.

        The fastest way to read everything: objects come in the order they lie in the image, so delta
        bases are still cached when their deltas come. Paths are gathered in batches of `READ_ALL_BATCH`
        files, each read in PACK order, so memory stays bounded whatever the image size.
        """
        start = normalize(top)
        root = self._layout.lookup(start)
        if not is_dir(root.mode):
            raise NotADirectoryError(errno.ENOTDIR, "Not a directory", shown(start))
        find, offset = self._pack.index.find, self._pack.index.offset  # bound once: the loop is hot
        batch: list[tuple[int, int, bytes, bytes]] = []  # (PACK offset, IDX position, id, path)
        # Tree ids above each pending directory: a forged tree that contains itself is an error.
        pending: list[tuple[bytes, bytes, frozenset[bytes]]] = []
        if root.mode == MODE_DIR:
            pending.append((start, root.oid, frozenset({root.oid})))
        while pending:
            path, oid, ancestors = pending.pop()
            prefix = path + b"/" if path else b""
            for mode, name, child in reversed(self._tree_rows(oid)[0]):
                if mode in _FILE_TEXTS:
                    i = find(child)
                    if i < 0:
                        raise CorruptImageError(f"blob {child.hex()} is missing from the image")
                    batch.append((offset(i), i, child, prefix + name))
                elif mode == _DIR_TEXT:
                    if child in ancestors:
                        raise CorruptImageError(f"tree {child.hex()} contains itself")
                    pending.append((prefix + name, child, ancestors | {child}))
            if len(batch) >= READ_ALL_BATCH or not pending:
                yield from self._read_batch(batch)
                batch = []

    def _read_batch(self, batch: list[tuple[int, int, bytes, bytes]]) -> Iterator[tuple[str, bytes]]:
        batch.sort()
        get_at = self._pack.get_at
        for at, i, oid, path in batch:
            # Not kept in the cache: a single pass would only evict what repeated reads use.
            kind, data = get_at(i, oid, False, at)
            if kind != BLOB:
                raise CorruptImageError(f"{shown(path)}: object {oid.hex()} should be a blob")
            yield path.decode("utf-8", "surrogateescape"), data

    # -- commit --------------------------------------------------------------------------------------

    @property
    def commit_time(self) -> int:
        return self.info.commit_time
