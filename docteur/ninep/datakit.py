"""The ``--layout datakit`` view: DataKit's read-only files, names and formats, over an image's refs,
commits and trees.

    /branch/<name>/head  head.live  reflog          the branch's commit (one line each)
    /branch/<name>/ro/                              its tree
    /branch/<name>/diff/<commit>                    "+ path", "- path", "* path" from <commit> to the head
    /branch/<name>/watch/[<a>.node/...]tree.live    "D-<id>", "F-", "X-", "L-", or a blank line
    /branch/<name>/fast-forward  transactions/      there, refusing every write (EROFS)
    /snapshots/<commit>/{hash,msg,parents,ro/,diff/<commit>}   any commit the image holds
    /trees/<id>  /trees/D-<id> ...                  any tree (a directory) or blob (a file) by id
    /remotes/                                       empty

As in DataKit, /snapshots, /trees and the diff/ directories list as empty: their entries are reached by
id. An image never changes, so each stream (head.live, reflog, tree.live) gives its current state and
ends. README.md ("9P") says what was chosen where DataKit's document leaves a detail open.
"""

from __future__ import annotations

import errno
import functools
import re

from docteur.errors import CorruptImageError
from docteur.fs.image import Image, View
from docteur.git.objects import TreeEntry, parse_valid_tree
from docteur.ninep.contents import Contents
from docteur.ninep.fs import (
    GIT_DIR,
    GIT_EXEC,
    GIT_FILE,
    GIT_LINK,
    GIT_SUBMODULE,
    BytesHandle,
    FsStat,
    Handle,
    Node,
    ReadOnlyFS,
    child_path,
)
from docteur.ninep.tree import TreeFS, image_statfs

HEADS = "refs/heads/"
BRANCH_FILES = ("fast-forward", "head", "head.live", "reflog")
BRANCH_DIRS = ("diff", "ro", "transactions", "watch")
SNAPSHOT_FILES = ("hash", "msg", "parents")
LIVE = "tree.live"
NODE = ".node"
# What tree.live says a path is; a submodule, which DataKit has no notion of, reads as absent.
KINDS = {GIT_DIR: "D", GIT_FILE: "F", GIT_EXEC: "X", GIT_LINK: "L"}
_HEX_ID = re.compile(r"^[0-9a-f]{40}$")
_KINDED_ID = re.compile(r"^([DFXL])-([0-9a-f]{40})$")
VIEWS = 64  # commits whose views (and their parsed trees) are kept
DIFFS = 16  # diff/ files kept, read once at lookup (their size) and again at open: ~40 bytes a changed file


def _missing(path: str) -> FileNotFoundError:
    return FileNotFoundError(errno.ENOENT, "No such file or directory", path)


def branches(img: Image) -> dict[str, str]:
    """branch/'s names -> commits: the image's refs/heads/<name> whose name is one path component, or,
    when it records none, its header's commit as HEAD."""
    named = {
        name[len(HEADS) :]: commit
        for name, commit in img.refs.items()
        if name.startswith(HEADS) and "/" not in name[len(HEADS) :]
    }
    return named or {"HEAD": img.commit}


class DatakitFS(ReadOnlyFS):
    def __init__(self, img: Image) -> None:
        super().__init__(img.info.commit_time)
        self.img = img
        self.branches = branches(img)
        self.contents = Contents()  # one budget for the files open in every tree

    # -- routing: which part of the namespace a node belongs to --------------------------------------

    def _mounted(self, path: str) -> TreeFS | None:
        """The tree served under branch/<name>/ro or snapshots/<commit>/ro when `path` lies there."""
        parts = path.split("/", 3)
        if len(parts) < 3 or parts[2] != "ro":
            return None
        if parts[0] == "branch" and parts[1] in self.branches:
            return self._tree_fs("/".join(parts[:3]), self.branches[parts[1]])
        if parts[0] == "snapshots":
            return self._tree_fs("/".join(parts[:3]), parts[1])
        return None

    @staticmethod
    def _in_objects(node: Node) -> bool:
        return node.path.startswith("trees/")

    # -- the interface -------------------------------------------------------------------------------

    def root(self) -> Node:
        return Node("", GIT_DIR, 0, self.img.commit)

    def lookup(self, parent: Node, name: str) -> Node:
        tree = self._mounted(parent.path)
        if tree is not None:
            return tree.lookup(parent, name)
        if self._in_objects(parent):
            return self._object_child(parent, name)
        if not parent.is_dir:
            raise NotADirectoryError(errno.ENOTDIR, "Not a directory", parent.path)
        return self._node(child_path(parent, name))

    def entries(self, node: Node) -> list[Node]:
        tree = self._mounted(node.path)
        if tree is not None:
            return tree.entries(node)
        if self._in_objects(node):
            return [self._entry_node(node, e) for e in self._tree(node)]
        return [self._node(child_path(node, name)) for name in self._names(node.path)]

    def open(self, node: Node) -> Handle:
        tree = self._mounted(node.path)
        if tree is not None:
            return tree.open(node)
        if self._in_objects(node):
            return self.contents.open(node.oid, node.size, lambda: self._blob(node.oid))
        return BytesHandle(self._file(node.path))

    def readlink(self, node: Node) -> str:
        tree = self._mounted(node.path)
        if tree is not None:
            return tree.readlink(node)
        return self._blob(node.oid).decode("utf-8", "surrogateescape")

    def statfs(self) -> FsStat:
        return image_statfs(self.img)

    # -- the files DataKit makes up ------------------------------------------------------------------

    def _node(self, path: str) -> Node:
        """The node at `path` outside the trees: a directory of DataKit's, or one of its files."""
        parts = path.split("/")
        top, rest = parts[0], parts[1:]
        if top in ("branch", "remotes", "snapshots", "trees") and not rest:
            return self._dir(path, self.img.commit)
        if top == "trees" and len(rest) == 1:
            return self._object(path, rest[0])
        if top == "branch" and rest[0] in self.branches:
            return self._commit_node(path, self.branches[rest[0]], rest[1:], BRANCH_FILES, BRANCH_DIRS)
        if top == "snapshots":
            commit = self._snapshot(path, rest[0])
            return self._commit_node(path, commit, rest[1:], SNAPSHOT_FILES, ("diff", "ro"))
        raise _missing(path)

    def _commit_node(
        self, path: str, commit: str, rest: list[str], files: tuple[str, ...], dirs: tuple[str, ...]
    ) -> Node:
        """A node of branch/<name>/ or snapshots/<commit>/ (`rest` its path below them)."""
        if not rest:
            return self._dir(path, commit)
        name = rest[0]
        if len(rest) == 1 and name in files:
            return self._file_node(path, commit)
        if name not in dirs:
            raise _missing(path)
        if name == "ro":
            tree = self._mounted(path)
            assert tree is not None
            return tree.root()
        if name == "diff" and len(rest) == 2:
            self._view(rest[1], path)  # a commit of the image, or nothing there
            return self._file_node(path, commit)
        if name == "watch":
            return self._watch_node(path, commit, rest[1:])
        if len(rest) == 1:  # diff/ and transactions/: nothing listed, nothing made
            return self._dir(path, commit)
        raise _missing(path)

    def _watch_node(self, path: str, commit: str, below: list[str]) -> Node:
        """watch/ and its <name>.node/ directories, any path whether it exists or not, and their
        tree.live."""
        live = bool(below) and below[-1] == LIVE
        nodes = below[:-1] if live else below
        if not all(name.endswith(NODE) and len(name) > len(NODE) for name in nodes):
            raise _missing(path)
        return self._file_node(path, commit) if live else self._dir(path, commit)

    def _dir(self, path: str, oid: str) -> Node:
        return Node(path, GIT_DIR, 0, oid)

    def _file_node(self, path: str, commit: str) -> Node:
        return Node(path, GIT_FILE, len(self._file(path)), commit)

    def _names(self, path: str) -> list[str]:
        """What a directory of DataKit's lists (those reached by id list nothing)."""
        parts = path.split("/")
        if path == "":
            return ["branch", "remotes", "snapshots", "trees"]
        if path == "branch":
            return sorted(self.branches)
        if len(parts) == 2 and parts[0] == "branch":
            return sorted(BRANCH_FILES + BRANCH_DIRS)
        if len(parts) == 2 and parts[0] == "snapshots":
            return ["diff", *SNAPSHOT_FILES, "ro"]
        if len(parts) >= 3 and parts[0] == "branch" and parts[2] == "watch":
            view = self._view(self.branches[parts[1]], path)
            return [LIVE, *(name + NODE for name in self._existing(view, _watched(parts[3:])))]
        return []

    def _existing(self, view: View, where: str) -> list[str]:
        """The names below a watched path that exist now: what DataKit suggests watching."""
        try:
            with self.lock:
                return view.listdir(where) if view.stat(where).mode == GIT_DIR else []
        except (FileNotFoundError, NotADirectoryError):
            return []

    def _file(self, path: str) -> bytes:
        """The content of one of DataKit's files (its path already resolved by _node)."""
        parts = path.split("/")
        if parts[0] == "branch":
            commit = self.branches[parts[1]]
            name = parts[2]
            if name in ("head", "head.live", "reflog"):
                return f"{commit}\n".encode()
            if name == "fast-forward":
                return b""
            if name == "diff":
                return self._diff(commit, parts[3])
            return self._tree_live(commit, _watched(parts[3:-1]))
        commit, name = parts[1], parts[2]
        if name == "diff":
            return self._diff(commit, parts[3])
        info = self._view(commit, path).info
        if name == "hash":
            return f"{info.id}\n".encode()
        if name == "msg":
            return info.message
        return "".join(f"{p}\n" for p in info.parents).encode()

    @functools.lru_cache(maxsize=DIFFS)  # noqa: B019 - the filesystem lives as long as the server
    def _diff(self, commit: str, base: str) -> bytes:
        """diff/<base> under `commit`: what changed from `base` to `commit`, a line per file."""
        new, old = self._view(commit, commit), self._view(base, base)
        with self.lock:
            changes = new.diff(old)
        return "".join(f"{what} {path}\n" for what, path in changes).encode("utf-8", "surrogateescape")

    def _tree_live(self, commit: str, where: str) -> bytes:
        view = self._view(commit, commit)
        try:
            with self.lock:
                st = view.stat(where)
        except (FileNotFoundError, NotADirectoryError):
            return b"\n"
        kind = KINDS.get(st.mode)
        return b"\n" if kind is None else f"{kind}-{st.oid}\n".encode()

    # -- commits -------------------------------------------------------------------------------------

    def _snapshot(self, path: str, oid: str) -> str:
        self._view(oid, path)
        return oid

    def _view(self, oid: str, path: str) -> View:
        """The view of commit `oid` of the image; ENOENT (naming `path`) for anything else."""
        if not _HEX_ID.match(oid):
            raise _missing(path)
        if oid == self.img.commit:
            return self.img
        kind, _ = self._get(oid, path)
        if kind != "commit":
            raise _missing(path)
        return self._commit_view(oid)

    @functools.lru_cache(maxsize=VIEWS)  # noqa: B019 - the filesystem lives as long as the server
    def _commit_view(self, oid: str) -> View:
        with self.lock:
            return self.img.at(oid)

    @functools.lru_cache(maxsize=VIEWS)  # noqa: B019
    def _tree_fs(self, prefix: str, commit: str) -> TreeFS:
        view = self._view(commit, prefix)
        return TreeFS(self.img, view=view, prefix=prefix, lock=self.lock, contents=self.contents)

    # -- trees and blobs by id -----------------------------------------------------------------------

    def _get(self, oid: str, path: str) -> tuple[str, bytes]:
        with self.lock:
            try:
                return self.img.objects.get(oid)
            except KeyError:
                raise _missing(path) from None

    def _object(self, path: str, name: str) -> Node:
        """trees/<id>, or trees/<kind>-<id> as tree.live gives it (the kind must be the object's)."""
        kinded = _KINDED_ID.match(name)
        oid = kinded.group(2) if kinded else name
        if not _HEX_ID.match(oid):
            raise _missing(path)
        kind, data = self._get(oid, path)
        wanted = {"D": "tree"}.get(kinded.group(1), "blob") if kinded else kind
        if kind != wanted:
            raise _missing(path)
        if kind == "tree":
            return Node(path, GIT_DIR, 0, oid)
        if kind == "blob":
            mode = {"X": GIT_EXEC, "L": GIT_LINK}.get(kinded.group(1), GIT_FILE) if kinded else GIT_FILE
            return Node(path, mode, len(data), oid)
        raise _missing(path)

    def _blob(self, oid: str) -> bytes:
        kind, data = self._get(oid, oid)
        if kind != "blob":
            raise CorruptImageError(f"object {oid} should be a blob")
        return data

    def _tree(self, node: Node) -> list[TreeEntry]:
        return [] if node.mode == GIT_SUBMODULE else list(self._parsed_tree(node.oid).values())

    @functools.lru_cache(maxsize=256)  # noqa: B019
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


def _watched(nodes: list[str]) -> str:
    """The path a watch directory watches: its <name>.node components without the suffix."""
    return "/".join(name[: -len(NODE)] for name in nodes)
