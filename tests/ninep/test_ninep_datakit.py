"""--layout datakit over the real server: every file DataKit documents, compared with git's own answers
on the repository the image was made from (two branches, a tag, history)."""

from __future__ import annotations

import errno
import stat
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import pytest
from histories import branched_repo, commits, diff_lines, rev
from trees import git

import docteur
from docteur.make import make
from docteur.ninep.datakit import DatakitFS
from docteur.ninep.wire import MsgType

from .client import Client, P9Error
from .conftest import Served

Serve = Callable[..., AbstractContextManager[Served]]
BRANCH_ENTRIES = [
    b"diff",
    b"fast-forward",
    b"head",
    b"head.live",
    b"reflog",
    b"ro",
    b"transactions",
    b"watch",
]
# git ls-tree's modes as the server shows them.
UNIX = {"100644": stat.S_IFREG | 0o644, "100755": stat.S_IFREG | 0o755, "120000": stat.S_IFLNK | 0o777}


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return branched_repo(tmp_path_factory.mktemp("datakit") / "repo")


@pytest.fixture(scope="module", params=["zlib", "zstd"])
def image(repo: Path, request: pytest.FixtureRequest) -> Path:
    """Both kinds of image: in a zstd one, files (history included) are read from its frames."""
    out = repo.parent / f"refs-{request.param}.img"
    make(
        str(repo),
        out,
        branch=["main", "feature"],
        tags=True,
        history=True,
        quiet=True,
        compress=request.param,
    )
    return out


@pytest.fixture
def client(image: Path, serve: Serve) -> Iterator[Client]:
    with docteur.open(image) as img, serve(DatakitFS(img)) as s, s.client() as c:
        yield c


def names(c: Client, path: str) -> list[bytes]:
    return [n for n, _, _ in c.listdir(path) if n not in (b".", b"..")]


def refused(call: Callable[[], object]) -> int:
    with pytest.raises(P9Error) as caught:
        call()
    return caught.value.errno


def tree_of(c: Client, base: str, where: str = "") -> dict[bytes, tuple[int, bytes]]:
    """Every file below `base` through the server: path -> (mode, content or link target)."""
    found = {}
    for name, _, kind in c.listdir(f"{base}/{where}"):
        if name in (b".", b".."):
            continue
        rel = f"{where}/{name.decode()}" if where else name.decode()
        if kind == 4:
            found |= tree_of(c, base, rel)
            continue
        mode = c.getattr(f"{base}/{rel}").num("mode")
        if stat.S_ISLNK(mode):
            fid, _ = c.walk(f"{base}/{rel}")
            found[rel.encode()] = (mode, c.rpc(MsgType.TREADLINK, fid=fid).text("target"))
            c.clunk(fid)
        else:
            found[rel.encode()] = (mode, c.read(f"{base}/{rel}"))
    return found


def git_tree(repo: Path, commit: str) -> dict[bytes, tuple[int, bytes]]:
    listing = git(repo, "ls-tree", "-r", "-z", commit).split(b"\0")[:-1]
    out = {}
    for row in listing:
        meta, path = row.split(b"\t", 1)
        mode, _, oid = meta.decode().split()
        out[path] = (UNIX[mode], git(repo, "cat-file", "blob", oid))
    return out


def test_the_root_and_the_directories_listed_empty(client: Client) -> None:
    assert names(client, "") == [b"branch", b"remotes", b"snapshots", b"trees"]
    for empty in ("remotes", "snapshots", "trees", "branch/main/transactions", "branch/main/diff"):
        assert names(client, empty) == [], empty


def test_branch_lists_the_branches_and_not_the_tags(client: Client) -> None:
    assert names(client, "branch") == [b"feature", b"main"]
    assert names(client, "branch/main") == BRANCH_ENTRIES


@pytest.mark.parametrize("branch", ["main", "feature"])
def test_head_streams_and_tree_are_git_s(client: Client, repo: Path, branch: str) -> None:
    head = f"{rev(repo, branch)}\n".encode()
    for name in ("head", "head.live", "reflog"):
        assert client.read(f"branch/{branch}/{name}") == head, name
        assert client.getattr(f"branch/{branch}/{name}").num("size") == len(head)
    assert client.read(f"branch/{branch}/fast-forward") == b""
    assert tree_of(client, f"branch/{branch}/ro") == git_tree(repo, branch)


def test_every_diff_is_git_diff_name_status(client: Client, repo: Path) -> None:
    every = commits(repo)
    assert len(every) == 5
    for branch in ("main", "feature"):
        for old in every:
            expected = diff_lines(repo, old, branch)
            assert client.read(f"branch/{branch}/diff/{old}") == expected, (branch, old)
    for new in every:
        for old in every:
            assert client.read(f"snapshots/{new}/diff/{old}") == diff_lines(repo, old, new), (new, old)
    assert diff_lines(repo, rev(repo, "v1"), "feature").count(b"\n") >= 5  # every kind of change is there


def test_snapshots_are_git_s_commits(client: Client, repo: Path) -> None:
    for commit in commits(repo):
        base = f"snapshots/{commit}"
        assert names(client, base) == [b"diff", b"hash", b"msg", b"parents", b"ro"]
        assert client.read(f"{base}/hash") == f"{commit}\n".encode()
        raw = git(repo, "cat-file", "commit", commit)
        assert client.read(f"{base}/msg") == raw.partition(b"\n\n")[2]
        parents = git(repo, "log", "-1", "--format=%P", commit).split()
        assert client.read(f"{base}/parents") == b"".join(p + b"\n" for p in parents)
        assert tree_of(client, f"{base}/ro") == git_tree(repo, commit)


def test_following_parents_walks_git_log(client: Client, repo: Path) -> None:
    seen, pending = [], [client.read("branch/feature/head").decode().strip()]
    while pending:
        commit = pending.pop()
        seen.append(commit)
        pending += client.read(f"snapshots/{commit}/parents").decode().split()
    logged = git(repo, "log", "--format=%H", "feature").decode().split()
    assert seen == logged
    messages = [client.read(f"snapshots/{c}/msg") for c in seen]
    assert b"\0".join(messages) == git(repo, "log", "-z", "--format=%B", "feature").rstrip(b"\0")


def test_watch_gives_the_ids_tree_live_promises(client: Client, repo: Path) -> None:
    watch = "branch/feature/watch"
    assert client.read(f"{watch}/tree.live") == f"D-{rev(repo, 'feature^{tree}')}\n".encode()
    top = git(repo, "ls-tree", "--name-only", "-z", "feature").split(b"\0")[:-1]
    assert names(client, watch) == [b"tree.live", *(n + b".node" for n in top)]
    assert names(client, f"{watch}/sub.node") == [b"tree.live", b"deep.node"]
    kinds = {
        "sub.node/deep.node": "D-" + rev(repo, "feature:sub/deep"),
        "sub.node/deep.node/c.txt.node": "F-" + rev(repo, "feature:sub/deep/c.txt"),
        "kind.node": "D-" + rev(repo, "feature:kind"),
        "ln.node": "F-" + rev(repo, "feature:ln"),
    }
    for where, expected in kinds.items():
        assert client.read(f"{watch}/{where}/tree.live") == f"{expected}\n".encode(), where
    assert client.read("branch/main/watch/run.sh.node/tree.live").startswith(b"F-")
    assert client.read("branch/main/watch/ln.node/tree.live") == f"L-{rev(repo, 'main:ln')}\n".encode()
    assert client.read(f"snapshots/{rev(repo, 'v1')}/ro/run.sh") == b"#!/bin/sh\necho run\n"
    assert client.getattr(f"snapshots/{rev(repo, 'v1')}/ro/run.sh").num("mode") == stat.S_IFREG | 0o755
    # Any path may be watched: one that does not exist reads as a blank line.
    assert client.read(f"{watch}/nowhere.node/deeper.node/tree.live") == b"\n"
    assert names(client, f"{watch}/nowhere.node") == [b"tree.live"]


def test_trees_by_id_and_by_what_tree_live_gives(client: Client, repo: Path) -> None:
    tree = rev(repo, "main:sub")
    expected = sorted(git(repo, "ls-tree", "--name-only", "-z", tree).split(b"\0")[:-1])
    assert names(client, f"trees/{tree}") == expected
    live = client.read("branch/main/watch/sub.node/tree.live").decode().strip()
    assert names(client, f"trees/{live}") == expected
    blob = rev(repo, "main:a.txt")
    for name in (blob, f"F-{blob}"):
        assert client.read(f"trees/{name}") == git(repo, "cat-file", "blob", blob)
    for wrong in (f"D-{blob}", f"F-{tree}", f"trees/{rev(repo, 'main')}"):
        assert refused(lambda w=wrong: client.walk(f"trees/{w}")) == errno.ENOENT, wrong


def test_what_is_not_there(client: Client, repo: Path) -> None:
    tree, tag = rev(repo, "main^{tree}"), rev(repo, "v1")
    missing = [
        "branch/v1",
        "branch/nope",
        f"snapshots/{tree}",
        f"snapshots/{'0' * 40}",
        "snapshots/main",
        f"branch/main/diff/{tree}",
        f"branch/main/diff/{'0' * 40}",
        f"snapshots/{tag}/diff/nope",
        "branch/main/watch/sub",  # a watch directory is named <name>.node
        "branch/main/nope",
        "debug",
    ]
    for path in missing:
        assert refused(lambda p=path: client.walk(p)) == errno.ENOENT, path
    head, _ = client.walk("branch/main/head")
    assert refused(lambda: client.walk("x", fid=head)) == errno.ENOTDIR


def test_every_mutation_is_refused(client: Client) -> None:
    def mkdir(path: str, name: bytes) -> object:
        fid, _ = client.walk(path)
        return client.rpc(MsgType.TMKDIR, dfid=fid, name=name, mode=0o755, gid=0)

    def create(path: str) -> object:
        fid, _ = client.walk(path)
        return client.rpc(MsgType.TLCREATE, fid=fid, name=b"f", flags=1, mode=0o644, gid=0)

    def write(path: str) -> object:
        fid, _ = client.walk(path)
        return client.open(fid, 1)  # O_WRONLY

    attempts = [
        lambda: mkdir("branch", b"new-branch"),
        lambda: mkdir("branch/main/transactions", b"t"),
        lambda: mkdir("remotes", b"origin"),
        lambda: create("branch/main"),
        lambda: create("branch/main/transactions"),
        lambda: write("branch/main/fast-forward"),
        lambda: write("branch/main/head"),
        lambda: write("branch/main/ro/a.txt"),
    ]
    for attempt in attempts:
        assert refused(attempt) == errno.EROFS
    fid, _ = client.walk("branch/main/fast-forward")
    client.open(fid)
    assert refused(lambda: client.rpc(MsgType.TWRITE, fid=fid, offset=0, data=b"0" * 40)) == errno.EROFS


@pytest.mark.parametrize("index", [True, False])
def test_an_image_naming_no_branch_shows_its_commit_as_head(repo: Path, serve: Serve, index: bool) -> None:
    out = repo.parent / f"plain-{index}.img"
    make(str(repo), out, history=True, index=index, quiet=True)  # without the index: OCaml docteur's
    with docteur.open(out) as img, serve(DatakitFS(img)) as s, s.client("9P2000.u") as c:
        assert names(c, "branch") == [b"HEAD"]
        assert c.read("branch/HEAD/head") == f"{rev(repo, 'HEAD')}\n".encode()
        assert c.read("branch/HEAD/ro/a.txt") == git(repo, "show", "HEAD:a.txt")
        first = rev(repo, "HEAD~2")
        assert c.read(f"branch/HEAD/diff/{first}") == diff_lines(repo, first, "HEAD")
        assert c.read(f"snapshots/{first}/ro/sub/b.txt") == git(repo, "show", f"{first}:sub/b.txt")
