"""The FUSE operations of a mounted image: attributes, directories, symlinks and reads, nothing writable.

The mount is read-only (`-o ro`), so the kernel answers every write with EROFS before asking us. Inode
numbers come from a hash of the path, so they are the same on every mount of the same image; times are the
commit's; files belong to whoever mounted them.
"""

from __future__ import annotations

import errno
import functools
import hashlib
import os
import stat
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from mfusepy import FuseOSError, Operations, c_stat, set_st_attrs

from docteur.errors import DocteurError
from docteur.fs.image import Image, Stat
from docteur.git.objects import MODE_DIR, MODE_EXEC, MODE_GITLINK, MODE_LINK

ROOT_INO = 1
RECENT_FILES = 4
RECENT_DIRECTORIES = 16
STATFS_BLOCK = 4096
FUSE_CAP_READDIRPLUS, FUSE_CAP_READDIRPLUS_AUTO = 1 << 13, 1 << 14  # libfuse3's fuse_common.h
_P = ParamSpec("_P")
_R = TypeVar("_R")


def _modes(mode: int) -> int:
    if mode in (MODE_DIR, MODE_GITLINK):
        return stat.S_IFDIR | 0o755
    if mode == MODE_LINK:
        return stat.S_IFLNK | 0o777
    return stat.S_IFREG | (0o755 if mode == MODE_EXEC else 0o644)


def inode(path: str) -> int:
    """A stable inode number for a path: 1 for the root, else 63 bits of its BLAKE2b (never 0 or 1)."""
    return _inode(path.strip("/").encode("utf-8", "surrogateescape"))


def _inode(raw: bytes) -> int:
    if not raw:
        return ROOT_INO
    return max(2, int.from_bytes(hashlib.blake2b(raw, digest_size=8).digest(), "little") >> 1)


def _bound(recent: dict[str, Any], size: int) -> None:
    """Forget the oldest entries of an insertion-ordered cache beyond `size`."""
    while len(recent) > size:
        recent.pop(next(iter(recent)))


def _eio(method: Callable[_P, _R]) -> Callable[_P, _R]:
    """A damaged image is an I/O error for the reader, not a crash of the mount."""

    @functools.wraps(method)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return method(*args, **kwargs)
        except DocteurError:
            raise FuseOSError(errno.EIO) from None

    return wrapper


class ImageOperations(Operations):  # type: ignore[misc]
    use_ns = True  # times in nanoseconds (mfusepy's non-deprecated convention)

    def __init__(self, img: Image) -> None:
        self.img = img
        self._time = img.info.commit_time * 1_000_000_000
        self._owner = {"st_uid": os.getuid(), "st_gid": os.getgid()}
        self._recent: dict[str, bytes] = {}
        # Listings as the kernel takes them (names and filled stat structures), for the directories read
        # last: `find` and `ls -R` list every directory again each time, and the image never changes.
        self._listings: dict[str, list[tuple[bytes, c_stat]]] = {}
        self._template = c_stat()
        set_st_attrs(self._template, self._attrs("/", MODE_DIR, 0, 1), use_ns=True)

    def _attrs(self, path: str, mode: int, size: int, nlink: int) -> dict[str, Any]:
        return {
            "st_mode": _modes(mode),
            "st_ino": inode(path),
            "st_nlink": nlink,
            "st_size": size,
            "st_blocks": -(-size // 512),
            "st_blksize": STATFS_BLOCK,
            "st_atime": self._time,
            "st_mtime": self._time,
            "st_ctime": self._time,
            **self._owner,
        }

    @_eio
    def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
        return self._attrs_of(path, self.img.stat(path))

    def _attrs_of(self, path: str, st: Stat) -> dict[str, Any]:
        if st.mode == MODE_DIR:
            return self._attrs(path, st.mode, 0, 2 + self.img.subdirectories(path))
        return self._attrs(path, st.mode, st.size, 2 if st.mode == MODE_GITLINK else 1)

    @_eio
    def readlink(self, path: str) -> str:
        return self.img.readlink(path)

    @_eio
    def listing(self, path: str) -> list[tuple[bytes, c_stat]]:
        """Every entry of a directory with its full attributes, ready for the kernel: it asks for them all
        at once (READDIRPLUS, see mount.py) instead of one lookup per file. The structures are filled
        from a template (what every entry shares) and kept for the last directories listed."""
        found = self._listings.get(path)
        if found is not None:
            return found
        here = path.rstrip("/")
        raw = here.encode("utf-8", "surrogateescape")
        parent = raw.rpartition(b"/")[0]
        found = [
            (b".", self._filled(raw, stat.S_IFDIR, 0, 0)),
            (b"..", self._filled(parent, stat.S_IFDIR, 0, 0)),
        ]
        for name, st in self.img.scandir(here):
            child = f"{here}/{name}"
            if st.mode == MODE_DIR:
                nlink = 2 + self.img.subdirectories(child)
            else:
                nlink = 2 if st.mode == MODE_GITLINK else 1
            key = name.encode("utf-8", "surrogateescape")
            found.append((key, self._filled(raw + b"/" + key, _modes(st.mode), st.size, nlink)))
        self._listings[path] = found
        _bound(self._listings, RECENT_DIRECTORIES)
        return found

    def _filled(self, raw: bytes, mode: int, size: int, nlink: int) -> c_stat:
        st = c_stat.from_buffer_copy(self._template)
        st.st_mode, st.st_ino, st.st_nlink = mode, _inode(raw.strip(b"/")), nlink
        st.st_size, st.st_blocks = size, -(-size // 512)
        return st

    def readdir(self, path: str, fh: int) -> list[str]:
        """Names only: defining it makes mfusepy register directory reads, which the mount serves from
        listing() (see mount.py)."""
        return [name.decode("utf-8", "surrogateescape") for name, _ in self.listing(path)]

    def init_with_config(self, conn_info: Any, config_3: Any) -> None:
        # The kernel's "auto" readdirplus asks for attributes with a directory's first page only, then
        # looks every later entry up, one round trip each: ask for them with every page instead.
        if conn_info is not None and conn_info.capable & FUSE_CAP_READDIRPLUS:
            conn_info.want = (conn_info.want | FUSE_CAP_READDIRPLUS) & ~FUSE_CAP_READDIRPLUS_AUTO

    def open(self, path: str, flags: int) -> int:
        # ENOSYS tells the kernel it need not open files at all: no open/release round trips, and its page
        # cache is kept (FOPEN_KEEP_CACHE is the kernel's default for file systems without open).
        raise FuseOSError(errno.ENOSYS)

    @_eio
    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        data = self._recent.get(path)
        if data is None:
            # A large file comes in many reads: keep the last few whole, not just the pack's cache.
            data = self._recent[path] = self.img.read(path)
            _bound(self._recent, RECENT_FILES)
        return data[offset : offset + size]

    def statfs(self, path: str) -> dict[str, int]:
        return {
            "f_bsize": STATFS_BLOCK,
            "f_frsize": STATFS_BLOCK,
            "f_blocks": -(-self.img.end // STATFS_BLOCK),  # what the image holds, padding aside
            "f_bfree": 0,
            "f_bavail": 0,
            "f_files": len(self.img.objects),
            "f_ffree": 0,
            "f_namemax": 255,
        }
