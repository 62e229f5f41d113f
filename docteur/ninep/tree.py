"""The filesystem of an image's own tree, through the reader's path API (``docteur.open``)."""

from __future__ import annotations

import threading

from docteur.fs.image import Image, View
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
    """The tree of the image's commit, or of ``view`` (another commit of it), optionally shown under
    ``prefix`` (the datakit layout mounts trees at branch/<name>/ro and snapshots/<commit>/ro).

    The reader's caches are not meant for concurrent use: ``lock`` (shared with whoever else reads the
    same image) serialises the calls.
    """

    def __init__(
        self,
        img: Image,
        *,
        view: View | None = None,
        prefix: str = "",
        lock: threading.RLock | None = None,
        contents: Contents | None = None,
    ) -> None:
        super().__init__(img.info.commit_time, lock)
        self.img = img
        self.view: View = view if view is not None else img
        self.prefix = prefix
        self.contents = contents or Contents()

    def inner(self, path: str) -> str:
        """The path in the image of a path of this view."""
        return path[len(self.prefix) + 1 :] if self.prefix else path

    def root(self) -> Node:
        return Node(self.prefix, GIT_DIR, 0, self.view.tree)

    def lookup(self, parent: Node, name: str) -> Node:
        path = child_path(parent, name)
        with self.lock:
            stat = self.view.stat(self.inner(path))
        return Node(path, stat.mode, stat.size, stat.oid)

    def entries(self, node: Node) -> list[Node]:
        with self.lock:
            listing = self.view.scandir(self.inner(node.path))
        return [Node(child_path(node, name), s.mode, s.size, s.oid) for name, s in listing]

    def open(self, node: Node) -> Handle:
        return self.contents.open(node.oid, node.size, lambda: self._read(node.path))

    def _read(self, path: str) -> bytes:
        with self.lock:
            return self.view.read(self.inner(path))

    def readlink(self, node: Node) -> str:
        with self.lock:
            return self.view.readlink(self.inner(node.path))

    def statfs(self) -> FsStat:
        return image_statfs(self.img)
