"""The honest image every mutation starts from, and what it holds according to git (not to docteur).

The image is made by docteur-make from a repository with several commits (`--history`), so its PACK holds
deltas; its tree has nesting, an executable, an empty file, a non-ASCII name and symlinks (one inside,
one pointing outside, one dangling).
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from gitservers import GIT_ISOLATION, Executable, Symlink, make_repo

import docteur
from docteur.bytesource.memory import InMemory
from docteur.git.objects import MODE_DIR, OFS_DELTA, REF_DELTA
from docteur.idx.reader import PackIndex
from docteur.image.format import PACK_OFFSET, locate
from docteur.make import make, parse_date
from docteur.pack.reader import PackReader

DATE = "2020-10-10T08:00:00+00:00"
COMMITS = 4
_TEXT = b"".join(b"line %d: the quick brown fox jumps over the lazy dog\n" % i for i in range(900))
FILES = {
    "README.md": b"# hostile\n" * 40,
    "src/main.py": _TEXT,
    "src/lib/util.py": _TEXT[::-1],
    "bin/run": Executable(b"#!/bin/sh\necho hi\n" * 10),
    "a/b/c/d/deep.txt": b"deep\n" * 100,
    "caf\u00e9 menu.txt": "cr\u00e8me br\u00fbl\u00e9e\n".encode() * 30,
    "empty": b"",
    "link": Symlink(b"src/main.py"),
    "out": Symlink(b"../../etc/passwd"),
    "dangling": Symlink(b"nowhere/at/all"),
}


@dataclass(frozen=True)
class Node:
    mode: int
    content: bytes = b""  # a file's bytes, a link's target; empty for a directory


@dataclass
class Expected:
    """What reading an image must give: path (bytes, no leading '/') -> Node, and what must fail instead.

    `fails` names paths whose read (or listing, for a directory) must raise CorruptImageError;
    `verify_ok` says whether docteur-verify must accept the image.
    """

    nodes: dict[bytes, Node]
    fails: frozenset[bytes] = frozenset()
    verify_ok: bool = True
    opens: bool = True  # whether docteur.open must succeed (False: it may also raise CorruptImageError)
    notes: list[str] = field(default_factory=list)

    def children(self, path: bytes) -> set[bytes]:
        """Names listed in a directory: its honest entries and its hostile ones alike."""
        prefix = path + b"/" if path else b""
        names = [p[len(prefix) :] for p in [*self.nodes, *self.fails] if p.startswith(prefix)]
        return {name for name in names if b"/" not in name}

    def dump(self, path: Path) -> None:
        path.write_text(
            json.dumps(
                {
                    "nodes": {p.hex(): [n.mode, n.content.hex()] for p, n in self.nodes.items()},
                    "fails": sorted(p.hex() for p in self.fails),
                    "verify_ok": self.verify_ok,
                    "opens": self.opens,
                }
            )
        )

    @classmethod
    def load(cls, path: Path) -> Expected:
        raw = json.loads(path.read_text())
        nodes = {bytes.fromhex(p): Node(m, bytes.fromhex(c)) for p, (m, c) in raw["nodes"].items()}
        fails = frozenset(bytes.fromhex(p) for p in raw["fails"])
        return cls(nodes, fails, raw["verify_ok"], raw["opens"])


def git_tree(repo: Path, commit: str) -> dict[bytes, Node]:
    """Every path of `commit` with its mode and content, as git itself reads them."""
    listing = subprocess.run(
        ["git", "ls-tree", "-r", "-t", "-z", "--full-tree", commit],
        cwd=repo,
        capture_output=True,
        check=True,
        env=GIT_ISOLATION | {"PATH": "/usr/bin:/bin"},
    ).stdout
    nodes: dict[bytes, Node] = {}
    blobs: list[tuple[bytes, int, bytes]] = []
    for record in filter(None, listing.split(b"\0")):
        meta, path = record.split(b"\t", 1)
        mode, _, oid = meta.split(b" ")
        if int(mode, 8) == MODE_DIR:
            nodes[path] = Node(MODE_DIR)
        else:
            blobs.append((path, int(mode, 8), oid))
    batch = subprocess.run(
        ["git", "cat-file", "--batch"],
        cwd=repo,
        input=b"".join(oid + b"\n" for _, _, oid in blobs),
        capture_output=True,
        check=True,
        env=GIT_ISOLATION | {"PATH": "/usr/bin:/bin"},
    ).stdout
    pos = 0
    for path, mode, _ in blobs:
        header_end = batch.index(b"\n", pos)
        size = int(batch[pos:header_end].split(b" ")[2])
        nodes[path] = Node(mode, batch[header_end + 1 : header_end + 1 + size])
        pos = header_end + 1 + size + 1
    return nodes


@dataclass(frozen=True)
class Base:
    image: Path
    expected: Expected
    deltas: int  # entries stored as OFS_DELTA or REF_DELTA


def build_base(workdir: Path) -> Base:
    """Make the honest image under `workdir` and check it is what the harness needs (deltas, a clean read)."""
    repo = make_repo(workdir / "repo.git", FILES, commits=COMMITS)
    image = workdir / "base.img"
    # Named refs: the extension holds a refs section too, which mutations reach like the others.
    make(str(repo.path), image, branch=["main"], history=True, quiet=True, date=parse_date(DATE))
    expected = Expected(git_tree(repo.path, repo.head))
    data = InMemory(image.read_bytes())
    placement, index = locate(data)
    pack = PackReader(data, index, at=PACK_OFFSET, length=placement.pack_length)
    deltas = sum(pack.entry_header(offset)[0] in (OFS_DELTA, REF_DELTA) for _, offset, _ in index.entries())
    with docteur.open(image) as img:
        assert img.commit == repo.head
    return Base(image, expected, deltas)


def index_of(image: bytes) -> tuple[int, int, PackIndex]:
    """(PACK end, IDX offset, IDX) of an honest image."""
    placement, index = locate(InMemory(image))
    return PACK_OFFSET + placement.pack_length, placement.idx_offset, index
