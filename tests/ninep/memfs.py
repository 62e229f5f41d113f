"""A tiny in-memory filesystem for the server tests: full control over contents, and reads that can be
held at a gate to test concurrency and Tflush."""

from __future__ import annotations

import errno
import hashlib
import threading
from dataclasses import dataclass

from docteur.ninep.fs import (
    GIT_DIR,
    GIT_EXEC,
    GIT_FILE,
    GIT_LINK,
    BytesHandle,
    FsStat,
    Handle,
    Node,
    ReadOnlyFS,
    child_path,
)

MTIME = 1_600_000_000


@dataclass(frozen=True)
class Exec:
    data: bytes


@dataclass(frozen=True)
class Link:
    target: bytes


Spec = dict[str, "bytes | Exec | Link | Spec"]


def _oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class GatedHandle:
    """Reads wait until the gate opens."""

    def __init__(self, data: bytes, gate: threading.Event) -> None:
        self._inner = BytesHandle(data)
        self._gate = gate

    def read(self, offset: int, count: int) -> bytes:
        if not self._gate.wait(30):
            raise TimeoutError("gate never opened")
        return self._inner.read(offset, count)


class MemFS(ReadOnlyFS):
    def __init__(self, spec: Spec, mtime: int = MTIME) -> None:
        super().__init__(mtime)
        self.spec = spec
        self.gates: dict[str, threading.Event] = {}  # path -> gate its reads wait on
        self.open_gates: dict[str, threading.Semaphore] = {}  # path -> permits its opens each take

    def _item(self, path: str) -> bytes | Exec | Link | Spec:
        item: bytes | Exec | Link | Spec = self.spec
        for part in path.split("/") if path else []:
            if not isinstance(item, dict):
                raise NotADirectoryError(errno.ENOTDIR, "Not a directory", path)
            if part not in item:
                raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
            item = item[part]
        return item

    def _node(self, path: str) -> Node:
        item = self._item(path)
        if isinstance(item, dict):
            return Node(path, GIT_DIR, 0, hashlib.sha1(repr(sorted(item)).encode()).hexdigest())
        if isinstance(item, Link):
            return Node(path, GIT_LINK, len(item.target), _oid(item.target))
        if isinstance(item, Exec):
            return Node(path, GIT_EXEC, len(item.data), _oid(item.data))
        return Node(path, GIT_FILE, len(item), _oid(item))

    def _content(self, node: Node) -> bytes:
        item = self._item(node.path)
        if isinstance(item, dict):
            raise IsADirectoryError(errno.EISDIR, "Is a directory", node.path)
        return item.target if isinstance(item, Link) else item.data if isinstance(item, Exec) else item

    def root(self) -> Node:
        return self._node("")

    def lookup(self, parent: Node, name: str) -> Node:
        if not parent.is_dir:
            raise NotADirectoryError(errno.ENOTDIR, "Not a directory", parent.path)
        return self._node(child_path(parent, name))

    def entries(self, node: Node) -> list[Node]:
        item = self._item(node.path)
        assert isinstance(item, dict)
        return [self._node(child_path(node, name)) for name in sorted(item)]

    def open(self, node: Node) -> Handle:
        data = self._content(node)
        permits = self.open_gates.get(node.path)
        if permits is not None and not permits.acquire(timeout=30):
            raise TimeoutError("no permit to open")
        gate = self.gates.get(node.path)
        return BytesHandle(data) if gate is None else GatedHandle(data, gate)

    def readlink(self, node: Node) -> str:
        return self._content(node).decode("utf-8", "surrogateescape")

    def statfs(self) -> FsStat:
        return FsStat(bsize=4096, blocks=10, files=3, fsid=42)
