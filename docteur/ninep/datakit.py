"""The ``--layout datakit`` view: DataKit's read-only files over the commits and trees an image holds.

    /ro  /hash  /msg  /parents                      the image's commit
    /snapshots/<commit>/{ro,hash,msg,parents}       any commit in the image (full history: --history)
    /trees/<id>                                     any tree (a directory) or blob (a file) in the image

As in DataKit, /snapshots and /trees list as empty: their entries are reached by id.
"""

from __future__ import annotations

import errno
import functools

from docteur.errors import CorruptImageError
from docteur.fs.image import Image
from docteur.git.objects import CommitInfo, TreeEntry, parse_commit, parse_valid_tree
from docteur.ninep.contents import Contents
from docteur.ninep.fs import (
    GIT_DIR,
    GIT_FILE,
    GIT_SUBMODULE,
    BytesHandle,
    FsStat,
    Handle,
    Node,
    ReadOnlyFS,
    child_path,
)
from docteur.ninep.tree import TreeFS, image_statfs

COMMIT_FILES = ("hash", "msg", "parents")


def _missing(path: str) -> FileNotFoundError:
    return FileNotFoundError(errno.ENOENT, "No such file or directory", path)


class DatakitFS(ReadOnlyFS):
    def __init__(self, img: Image) -> None:
        super().__init__(img.info.commit_time)
        self.img = img
        self.contents = Contents()  # one budget for the files open in either part
        self.head = TreeFS(img, prefix="ro", lock=self.lock, contents=self.contents)  # one lock, too

    # -- routing: which part of the namespace a node belongs to --------------------------------------

    @staticmethod
    def _in_head(node: Node) -> bool:
        return node.path == "ro" or node.path.startswith("ro/")

    @staticmethod
    def _in_objects(node: Node) -> bool:
        parts = node.path.split("/", 3)
        return (parts[0] == "trees" and len(parts) > 1) or (parts[0] == "snapshots" and parts[2:3] == ["ro"])

    # -- the interface -------------------------------------------------------------------------------

    def root(self) -> Node:
        return Node("", GIT_DIR, 0, self.img.commit)

    def lookup(self, parent: Node, name: str) -> Node:
        if self._in_head(parent):
            return self.head.lookup(parent, name)
        if self._in_objects(parent):
            return self._object_child(parent, name)
        for child in self._virtual_entries(parent):
            if child.name == name:
                return child
        path = child_path(parent, name)
        if parent.path == "snapshots":
            return self._snapshot(path, name)
        if parent.path == "trees":
            return self._object(path, name)
        raise _missing(path)

    def entries(self, node: Node) -> list[Node]:
        if self._in_head(node):
            return self.head.entries(node)
        if self._in_objects(node):
            return [self._entry_node(node, e) for e in self._tree(node)]
        return self._virtual_entries(node)

    def open(self, node: Node) -> Handle:
        if self._in_head(node):
            return self.head.open(node)
        if self._in_objects(node):
            return self.contents.open(node.oid, node.size, lambda: self._blob(node.oid))
        return BytesHandle(self._virtual_content(node))

    def readlink(self, node: Node) -> str:
        if self._in_head(node):
            return self.head.readlink(node)
        return self._blob(node.oid).decode("utf-8", "surrogateescape")

    def statfs(self) -> FsStat:
        return image_statfs(self.img)

    # -- the commit directories ----------------------------------------------------------------------

    def _virtual_entries(self, node: Node) -> list[Node]:
        if node.path == "":
            return [
                *self._commit_files("", self.img.info),
                self.head.root(),
                self._dir("snapshots"),
                self._dir("trees"),
            ]
        parts = node.path.split("/")
        if parts[0] == "snapshots" and len(parts) == 2:
            info = self._commit_info(parts[1])
            return [*self._commit_files(node.path, info), Node(f"{node.path}/ro", GIT_DIR, 0, info.tree)]
        return []  # /snapshots and /trees: reached by id, never listed

    def _dir(self, path: str) -> Node:
        return Node(path, GIT_DIR, 0, self.img.commit)

    def _commit_files(self, base: str, info: CommitInfo) -> list[Node]:
        prefix = f"{base}/" if base else ""
        return [
            Node(prefix + name, GIT_FILE, len(_commit_file(info, name)), info.id) for name in COMMIT_FILES
        ]

    def _virtual_content(self, node: Node) -> bytes:
        base, _, name = node.path.rpartition("/")
        info = self._commit_info(base.rpartition("/")[2]) if base else self.img.info
        return _commit_file(info, name)

    def _snapshot(self, path: str, oid: str) -> Node:
        self._commit_info(oid, path)
        return Node(path, GIT_DIR, 0, oid)

    def _commit_info(self, oid: str, path: str = "") -> CommitInfo:
        if oid == self.img.commit:
            return self.img.info
        kind, data = self._get(oid, path)
        if kind != "commit":
            raise _missing(path)
        return parse_commit(oid, data)

    # -- trees and blobs by id -----------------------------------------------------------------------

    def _get(self, oid: str, path: str) -> tuple[str, bytes]:
        with self.lock:
            try:
                return self.img.objects.get(oid)
            except KeyError:
                raise _missing(path) from None

    def _object(self, path: str, oid: str) -> Node:
        kind, data = self._get(oid, path)
        if kind == "tree":
            return Node(path, GIT_DIR, 0, oid)
        if kind == "blob":
            return Node(path, GIT_FILE, len(data), oid)
        raise _missing(path)

    def _blob(self, oid: str) -> bytes:
        kind, data = self._get(oid, oid)
        if kind != "blob":
            raise CorruptImageError(f"object {oid} should be a blob")
        return data

    def _tree(self, node: Node) -> list[TreeEntry]:
        return [] if node.mode == GIT_SUBMODULE else list(self._parsed_tree(node.oid).values())

    @functools.lru_cache(maxsize=256)  # noqa: B019 - the filesystem lives as long as the server
    def _parsed_tree(self, oid: str) -> dict[str, TreeEntry]:
        kind, data = self._get(oid, oid)
        if kind != "tree":
            raise CorruptImageError(f"object {oid} should be a tree")
        entries = parse_valid_tree(data, oid)
        return {e.name.decode("utf-8", "surrogateescape"): e for e in entries}

    def _object_child(self, parent: Node, name: str) -> Node:
        if not parent.is_dir:
            raise NotADirectoryError(errno.ENOTDIR, "Not a directory", parent.path)
        entry = None if parent.mode == GIT_SUBMODULE else self._parsed_tree(parent.oid).get(name)
        if entry is None:
            raise _missing(child_path(parent, name))
        return self._entry_node(parent, entry)

    def _entry_node(self, parent: Node, entry: TreeEntry) -> Node:
        oid = entry.oid.hex()
        path = child_path(parent, entry.name.decode("utf-8", "surrogateescape"))
        if entry.mode in (GIT_DIR, GIT_SUBMODULE):
            return Node(path, entry.mode, 0, oid)
        size = len(self._blob(oid))  # the object store gives no size without the content
        return Node(path, entry.mode, size, oid)


def _commit_file(info: CommitInfo, name: str) -> bytes:
    if name == "hash":
        return f"{info.id}\n".encode()
    if name == "msg":
        return info.message
    return "".join(f"{p}\n" for p in info.parents).encode()
