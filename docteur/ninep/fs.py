"""The filesystem interface the 9P server serves, read-only by construction.

A filesystem only answers questions (look up, list, read); it has no method that changes anything.
Every mutating 9P message reaches ``ReadOnlyFS.refuse``, the one place that says no.
"""

from __future__ import annotations

import errno
import os
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import NoReturn, Protocol, final

# Git modes, the only modes a tree holds.
GIT_DIR = 0o40000
GIT_FILE = 0o100644
GIT_EXEC = 0o100755
GIT_LINK = 0o120000
GIT_SUBMODULE = 0o160000  # shown as an empty directory, as a checkout does


@dataclass(frozen=True, slots=True)
class Node:
    """One object of the served namespace.

    ``path`` ('/'-separated from the served root, '' for the root) and ``oid`` together identify it:
    the server derives qid.path from both, so the same blob at two paths gets two qids.
    """

    path: str
    mode: int
    size: int
    oid: str

    @property
    def name(self) -> str:
        return self.path.rpartition("/")[2]

    @property
    def is_dir(self) -> bool:
        return self.mode in (GIT_DIR, GIT_SUBMODULE)

    @property
    def is_link(self) -> bool:
        return self.mode == GIT_LINK


def child_path(parent: Node, name: str) -> str:
    return f"{parent.path}/{name}" if parent.path else name


class Handle(Protocol):
    """An opened file; ``read`` may be called from several threads at once. Reads of a BytesHandle are
    served from the event loop, reads of any other handle in worker threads."""

    def read(self, offset: int, count: int) -> bytes: ...


class BytesHandle:
    """A handle over contents already in memory."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def read(self, offset: int, count: int) -> bytes:
        return self._data[offset : offset + count]


@dataclass(frozen=True, slots=True)
class FsStat:
    """What statfs reports: sizes in blocks of ``bsize`` bytes, a file count and an id."""

    bsize: int
    blocks: int
    files: int
    fsid: int


class ReadOnlyFS(ABC):
    """A read-only tree. Errors are the built-in ones: FileNotFoundError, NotADirectoryError,
    IsADirectoryError, or an OSError carrying an errno.

    Methods hold ``lock`` while they work. The server calls them from its event loop when it can take
    the lock at once and the work is small, and from worker threads otherwise (big files, a busy lock),
    so a method must not wait on anything but the lock.
    """

    def __init__(self, mtime: int, lock: threading.RLock | None = None) -> None:
        #: The one timestamp every file carries (the commit time), in seconds since the epoch.
        self.mtime = mtime
        self.lock = lock or threading.RLock()

    @abstractmethod
    def root(self) -> Node: ...

    @abstractmethod
    def lookup(self, parent: Node, name: str) -> Node:
        """The child ``name`` of directory ``parent``."""

    @abstractmethod
    def entries(self, node: Node) -> list[Node]:
        """The children of a directory, in a stable order."""

    @abstractmethod
    def open(self, node: Node) -> Handle:
        """A handle to read a file (or a symlink's target) from."""

    @abstractmethod
    def readlink(self, node: Node) -> str: ...

    @abstractmethod
    def statfs(self) -> FsStat: ...

    @final
    def refuse(self, operation: str) -> NoReturn:
        """Every change is refused here, and only here."""
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), operation)
