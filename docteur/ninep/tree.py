"""The filesystem of an image's own tree, through the reader's path API (``docteur.open``)."""

from __future__ import annotations

import threading

from docteur.fs.image import Image
from docteur.ninep.contents import Contents
from docteur.ninep.fs import GIT_DIR, FsStat, Handle, Node, ReadOnlyFS, child_path

BSIZE = 4096


def image_statfs(img: Image) -> FsStat:
    """The image as a disk: its size in blocks, its objects as files, its commit as the id."""
    return FsStat(
        bsize=BSIZE,
        blocks=-(-img.end // BSIZE),
        files=len(img.objects),
        fsid=int(img.commit[:16], 16),
    )


class TreeFS(ReadOnlyFS):
    """The commit's tree, optionally shown under ``prefix`` (the datakit layout mounts it at 'ro').

    The reader's caches are not meant for concurrent use: ``lock`` (shared with whoever else reads the
    same image) serialises the calls.
    """

    def __init__(
        self,
        img: Image,
        *,
        prefix: str = "",
        lock: threading.RLock | None = None,
        contents: Contents | None = None,
    ) -> None:
        super().__init__(img.info.commit_time, lock)
        self.img = img
        self.prefix = prefix
        self.contents = contents or Contents()

    def inner(self, path: str) -> str:
        """The path in the image of a path of this view."""
        return path[len(self.prefix) + 1 :] if self.prefix else path

    def root(self) -> Node:
        return Node(self.prefix, GIT_DIR, 0, self.img.tree)

    def lookup(self, parent: Node, name: str) -> Node:
        path = child_path(parent, name)
        with self.lock:
            stat = self.img.stat(self.inner(path))
        return Node(path, stat.mode, stat.size, stat.oid)

    def entries(self, node: Node) -> list[Node]:
        with self.lock:
            listing = self.img.scandir(self.inner(node.path))
        return [Node(child_path(node, name), s.mode, s.size, s.oid) for name, s in listing]

    def open(self, node: Node) -> Handle:
        return self.contents.open(node.oid, node.size, lambda: self._read(node.path))

    def _read(self, path: str) -> bytes:
        with self.lock:
            return self.img.read(self.inner(path))

    def readlink(self, node: Node) -> str:
        with self.lock:
            return self.img.readlink(self.inner(node.path))

    def statfs(self) -> FsStat:
        return image_statfs(self.img)
