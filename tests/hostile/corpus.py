"""The honest images mutations start from, one per image kind, and what each holds according to git (not
to docteur).

Each is made by docteur-make from a repository with several commits (`--history`), so its PACK holds
deltas; its tree has nesting, an executable, an empty file, a non-ASCII name and symlinks (one inside,
one pointing outside, one dangling). The kinds (KINDS): "indexed", a zlib image with its path index and a
refs section; "plain", one made `--no-index` (what OCaml docteur writes); "zstd", whose files lie in zstd
frames, with a dictionary (its small files are many and alike) and a blobs section for the history;
"refs", a zlib image of two branches (`-b main -b feature`), whose refs section names both.
"""

from __future__ import annotations

import json
import random
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from gitservers import GIT_ISOLATION, Executable, Symlink, make_repo, run_git

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
_WORDS = b"frame dictionary zstd block window checksum entry offset length table section image tree".split()
# For the zstd kind: small files, alike, whose 250 KiB make docteur-make train and keep a dictionary.
DOCS = {f"docs/page{i:02}.txt": b" ".join(random.Random(i).choices(_WORDS, k=800)) + b"\n" for i in range(40)}
FEATURE = "feature.txt"  # what the feature branch of the "refs" kind adds to main's second-last commit
# Each kind: docteur-make's options, and whether its repository has DOCS and the feature branch.
KINDS: dict[str, dict[str, object]] = {
    "indexed": {"branch": ["main"]},
    "plain": {"index": False},
    "zstd": {"branch": ["main"], "compress": "zstd"},
    "refs": {"branch": ["main", "feature"]},
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
    # Other commits the image holds (another ref's): commit id (hex) -> its tree, read through img.at().
    others: dict[str, dict[bytes, Node]] = field(default_factory=dict)

    def children(self, path: bytes) -> set[bytes]:
        """Names listed in a directory: its honest entries and its hostile ones alike."""
        prefix = path + b"/" if path else b""
        names = [p[len(prefix) :] for p in [*self.nodes, *self.fails] if p.startswith(prefix)]
        return {name for name in names if b"/" not in name}

    def dump(self, path: Path) -> None:
        path.write_text(
            json.dumps(
                {
                    "nodes": _nodes_json(self.nodes),
                    "fails": sorted(p.hex() for p in self.fails),
                    "verify_ok": self.verify_ok,
                    "opens": self.opens,
                    "others": {commit: _nodes_json(nodes) for commit, nodes in self.others.items()},
                }
            )
        )

    @classmethod
    def load(cls, path: Path) -> Expected:
        raw = json.loads(path.read_text())
        fails = frozenset(bytes.fromhex(p) for p in raw["fails"])
        others = {commit: _nodes_of(nodes) for commit, nodes in raw.get("others", {}).items()}
        return cls(_nodes_of(raw["nodes"]), fails, raw["verify_ok"], raw["opens"], others=others)


def _nodes_json(nodes: dict[bytes, Node]) -> dict[str, list[int | str]]:
    return {p.hex(): [n.mode, n.content.hex()] for p, n in nodes.items()}


def _nodes_of(raw: dict[str, list[int | str]]) -> dict[bytes, Node]:
    return {bytes.fromhex(p): Node(int(m), bytes.fromhex(str(c))) for p, (m, c) in raw.items()}


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
    kind: str = "indexed"


def _feature_branch(repo: Path) -> str:
    """A branch `feature` of one commit on main's second-last one, which adds FEATURE: its commit id."""
    who = b"Docteur Tests <tests@docteur.invalid> 1800000000 +0000"
    content = b"a feature of its own\n" * 20
    stream = b"commit refs/heads/feature\nauthor %s\ncommitter %s\ndata 8\nfeature\n" % (who, who)
    stream += b"from refs/heads/main^\nM 100644 inline %s\ndata %d\n%s\n" % (
        FEATURE.encode(),
        len(content),
        content,
    )
    run_git(repo, "fast-import", "--quiet", stdin=stream)
    return run_git(repo, "rev-parse", "refs/heads/feature").strip()


def build_base(workdir: Path, kind: str = "indexed") -> Base:
    """Make the honest image of `kind` under `workdir` and check it is what the harness needs (deltas, a
    clean read)."""
    options = KINDS[kind]
    repo = make_repo(workdir / "repo.git", {**FILES, **DOCS} if kind == "zstd" else FILES, commits=COMMITS)
    branches = options.get("branch", [])
    feature = _feature_branch(repo.path) if "feature" in branches else None  # type: ignore[operator]
    image = workdir / "base.img"
    make(str(repo.path), image, history=True, quiet=True, date=parse_date(DATE), **options)  # type: ignore[arg-type]
    expected = Expected(git_tree(repo.path, repo.head))
    if feature is not None:
        expected.others[feature] = git_tree(repo.path, feature)
    data = InMemory(image.read_bytes())
    placement, index = locate(data)
    pack = PackReader(data, index, at=PACK_OFFSET, length=placement.pack_length)
    deltas = sum(pack.entry_header(offset)[0] in (OFS_DELTA, REF_DELTA) for _, offset, _ in index.entries())
    with docteur.open(image) as img:
        assert img.commit == repo.head
        assert img.frame_count > 0 if kind == "zstd" else img.frame_count == 0
    return Base(image, expected, deltas, kind)


def index_of(image: bytes) -> tuple[int, int, PackIndex]:
    """(PACK end, IDX offset, IDX) of an honest image."""
    placement, index = locate(InMemory(image))
    return PACK_OFFSET + placement.pack_length, placement.idx_offset, index
