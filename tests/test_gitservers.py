"""The test Git servers really serve git and dulwich, refuse bad credentials, and leave nothing behind."""

import io
import os
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from dulwich.client import HTTPUnauthorized, get_transport_and_path
from dulwich.errors import GitProtocolError, HangupException, NotGitRepository
from dulwich.object_format import SHA1
from dulwich.objects import ObjectID
from dulwich.pack import OFS_DELTA, REF_DELTA, PackData
from gitservers import (
    GIT_ISOLATION,
    Executable,
    GitDaemon,
    GitHttp,
    Repo,
    SshServer,
    Symlink,
    alive,
    descendants,
    make_repo,
)

FILES = {
    "README.md": b"".join(
        b"line %d of a readme that changes a little in every commit\n" % i for i in range(60)
    ),
    "bin/run": Executable(b"#!/bin/sh\necho docteur\n"),
    "latest": Symlink(b"README.md"),
    "src/lib/deep.txt": b"nested\n" * 50,
}
AUTH = ("alice", "s3cret")
KINDS = ["git", "http", "http-auth", "ssh", "scp"]


def git(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", *args],
        cwd=cwd,
        env={**os.environ, **GIT_ISOLATION, **(env or {})},
        capture_output=True,
        text=True,
        timeout=30,
    )


def objects(repo: Path, rev: str) -> set[str]:
    listing = git("rev-list", "--objects", rev, cwd=repo)
    assert listing.returncode == 0 and listing.stdout, listing.stderr
    return {line.split()[0] for line in listing.stdout.splitlines()}


class _NoHaves:
    """A graph walker for a client that has nothing yet."""

    def __next__(self) -> ObjectID | None:
        return None

    def ack(self, sha: ObjectID, /) -> None:
        raise AssertionError("a client with no objects cannot get an ACK")

    def nak(self) -> None:
        pass


def fetch(
    url: str, ref: bytes, *, protocol_version: int | None = None, **kwargs: str
) -> tuple[str, PackData]:
    """Fetch the pack for one ref with dulwich, as docteur-make does: (the ref's id, the pack)."""
    client, path = get_transport_and_path(url, **kwargs)
    buffer = io.BytesIO()
    wanted: list[ObjectID] = []

    def determine_wants(refs: dict[bytes, ObjectID], depth: int | None = None) -> list[ObjectID]:
        wanted.append(refs[ref])
        return wanted

    client.fetch_pack(path, determine_wants, _NoHaves(), buffer.write, protocol_version=protocol_version)
    return wanted[0].decode(), PackData.from_file(io.BytesIO(buffer.getvalue()), SHA1)


def pack_ids(pack: PackData) -> set[str]:
    return {sha.hex() for sha, _offset, _crc in pack.iterentries()}


def pack_kinds(pack: PackData) -> Counter[int]:
    return Counter(unpacked.pack_type_num for unpacked in pack.iter_unpacked())


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("served")


@pytest.fixture(scope="module")
def repo(root: Path) -> Repo:
    return make_repo(root / "repo.git", FILES, commits=3, tag="v1.0")


@pytest.fixture(scope="module")
def daemon(root: Path) -> Iterator[GitDaemon]:
    with GitDaemon(root) as server:
        yield server


@pytest.fixture(scope="module")
def http(root: Path) -> Iterator[GitHttp]:
    with GitHttp(root) as server:
        yield server


@pytest.fixture(scope="module")
def http_auth(root: Path) -> Iterator[GitHttp]:
    with GitHttp(root, auth=AUTH) as server:
        yield server


@pytest.fixture(scope="module")
def sshd(root: Path) -> Iterator[SshServer]:
    with SshServer(root) as server:
        yield server


@pytest.fixture
def remote(
    request: pytest.FixtureRequest, daemon: GitDaemon, http: GitHttp, http_auth: GitHttp, sshd: SshServer
) -> tuple[str, dict[str, str]]:
    """(URL of repo.git, environment a client needs) for the URL kind the test is parametrized with."""
    return {
        "git": (daemon.url("repo.git"), {}),
        "http": (http.url("repo.git"), {}),
        "http-auth": (http_auth.url("repo.git", user=AUTH[0], password=AUTH[1]), {}),
        "ssh": (sshd.url("repo.git"), sshd.client_env),
        "scp": (sshd.scp_url("repo.git"), sshd.client_env),
    }[request.param]


def test_make_repo_layout_history_and_tag(tmp_path: Path, repo: Repo) -> None:
    listing = git("ls-tree", "-r", repo.head, cwd=repo.path).stdout.splitlines()
    modes = {line.split("\t")[1]: line.split()[0] for line in listing}
    assert modes == {
        "README.md": "100644",
        "bin/run": "100755",
        "latest": "120000",
        "src/lib/deep.txt": "100644",
    }
    assert git("show", f"{repo.head}:latest", cwd=repo.path).stdout == "README.md"
    assert (
        git("rev-list", "--parents", repo.head, cwd=repo.path).stdout.split("\n")[0].split()[1]
        == repo.commits[1]
    )
    # An older commit holds a prefix of the final file: history that a delta can use.
    first = git("show", f"{repo.commits[0]}:README.md", cwd=repo.path).stdout.encode()
    assert 0 < len(first) < len(FILES["README.md"]) and FILES["README.md"].startswith(first)
    assert git("cat-file", "-t", str(repo.tag), cwd=repo.path).stdout.strip() == "tag"
    assert git("rev-parse", "v1.0^{commit}", cwd=repo.path).stdout.strip() == repo.head
    assert git("symbolic-ref", "HEAD", cwd=repo.path).stdout.strip() == "refs/heads/main"
    # Ids do not depend on the clock or the place, and a work tree gets the files checked out.
    work = make_repo(tmp_path / "work", FILES, bare=False, commits=3, tag="v1.0")
    assert (work.commits, work.tag) == (repo.commits, repo.tag)
    assert os.readlink(work.path / "latest") == "README.md"
    assert os.access(work.path / "bin/run", os.X_OK)
    assert (work.path / "src/lib/deep.txt").read_bytes() == FILES["src/lib/deep.txt"]


@pytest.mark.parametrize("remote", KINDS, indirect=True)
def test_git_lists_and_clones(tmp_path: Path, repo: Repo, remote: tuple[str, dict[str, str]]) -> None:
    url, env = remote
    listed = git("ls-remote", url, env=env)
    assert listed.returncode == 0, listed.stderr
    refs = {name: sha for sha, name in (line.split("\t") for line in listed.stdout.splitlines())}
    assert refs["HEAD"] == refs["refs/heads/main"] == repo.head
    assert refs["refs/tags/v1.0"] == repo.tag
    cloned = git("clone", "--bare", "-q", url, str(tmp_path / "clone.git"), env=env)
    assert cloned.returncode == 0, cloned.stderr
    assert objects(tmp_path / "clone.git", "--all") == objects(repo.path, "--all")


@pytest.mark.parametrize("remote", KINDS, indirect=True)
def test_dulwich_fetches_one_ref(
    monkeypatch: pytest.MonkeyPatch, repo: Repo, remote: tuple[str, dict[str, str]]
) -> None:
    url, env = remote
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    head, pack = fetch(url, b"refs/heads/main")
    assert head == repo.head
    assert pack_ids(pack) == objects(repo.path, repo.head)
    assert pack_kinds(pack)[OFS_DELTA] + pack_kinds(pack)[REF_DELTA] > 0


def test_dulwich_ssh_command_from_git_ssh_command(repo: Repo, sshd: SshServer) -> None:
    # The route docteur-make takes when it passes GIT_SSH_COMMAND on, with no wrapper in PATH.
    tag, pack = fetch(sshd.url("repo.git"), b"refs/tags/v1.0", ssh_command=sshd.client_env["GIT_SSH_COMMAND"])
    assert tag == repo.tag
    assert pack_ids(pack) == objects(repo.path, "v1.0") | {tag}


@pytest.mark.parametrize(("protocol_version", "delta"), [(0, OFS_DELTA), (2, REF_DELTA)])
def test_delta_kind_depends_on_protocol(
    daemon: GitDaemon, repo: Repo, protocol_version: int, delta: int
) -> None:
    # Under protocol v2, dulwich does not ask for ofs-delta: a reader must handle both kinds.
    _head, pack = fetch(daemon.url("repo.git"), b"refs/heads/main", protocol_version=protocol_version)
    kinds = pack_kinds(pack)
    assert kinds[delta] > 0 and kinds[OFS_DELTA + REF_DELTA - delta] == 0


def test_http_refuses_wrong_or_missing_password(http_auth: GitHttp, repo: Repo) -> None:
    del http_auth.requests[:]
    for user, password in [(AUTH[0], "wrong"), (None, None)]:
        url = http_auth.url("repo.git", user=user, password=password)
        listed = git("ls-remote", url)
        assert listed.returncode != 0 and not listed.stdout
        assert "Authentication failed" in listed.stderr or "could not read Username" in listed.stderr
        with pytest.raises(HTTPUnauthorized):
            fetch(url, b"refs/heads/main")
    assert http_auth.requests and {request.status for request in http_auth.requests} == {401}
    assert any(request.headers.get("Authorization") for request in http_auth.requests)


def test_ssh_refuses_unauthorized_key(monkeypatch: pytest.MonkeyPatch, sshd: SshServer, repo: Repo) -> None:
    listed = git("ls-remote", sshd.url("repo.git"), env=sshd.stranger_env)
    assert listed.returncode != 0 and "Permission denied (publickey)" in listed.stderr
    for name, value in sshd.stranger_env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(HangupException, match="Permission denied"):
        fetch(sshd.scp_url("repo.git"), b"refs/heads/main")


def test_http_serves_gzip_and_chunked_requests(tmp_path: Path, root: Path, http: GitHttp) -> None:
    many = make_repo(root / "many.git", {"counter": b"0123456789" * 40}, commits=30)
    branches = "".join(f"create refs/heads/b{i} {sha}\n" for i, sha in enumerate(many.commits))
    subprocess.run(["git", "update-ref", "--stdin"], input=branches, text=True, cwd=many.path, check=True)
    # 30 wants make a body over 1 KiB, which git gzips; over http.postBuffer it streams it chunked.
    for option, header, value in [
        ("http.postBuffer=1048576", "Content-Encoding", "gzip"),
        ("http.postBuffer=100", "Transfer-Encoding", "chunked"),
    ]:
        del http.requests[:]
        clone = tmp_path / value
        cloned = git(
            "-c",
            "protocol.version=0",
            "-c",
            option,
            "clone",
            "--bare",
            "-q",
            http.url("many.git"),
            str(clone),
        )
        assert cloned.returncode == 0, cloned.stderr
        assert objects(clone, "--all") == objects(many.path, "--all")
        assert any(request.headers.get(header) == value for request in http.requests)


@pytest.mark.parametrize(
    ("server", "error", "message"),
    [
        ("daemon", GitProtocolError, "not exported"),
        ("http", NotGitRepository, None),
        ("sshd", HangupException, "does not appear to be a git repository"),
    ],
)
def test_dulwich_unknown_repository(
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
    server: str,
    error: type[Exception],
    message: str | None,
) -> None:
    served = request.getfixturevalue(server)
    for name, value in getattr(served, "client_env", {}).items():
        monkeypatch.setenv(name, value)
    with pytest.raises(error, match=message):
        fetch(served.url("missing.git"), b"refs/heads/main")


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    except ConnectionRefusedError:
        return True
    return False


@pytest.mark.parametrize("kind", [GitDaemon, SshServer])
def test_process_servers_stop_with_their_connections(root: Path, kind: type[GitDaemon | SshServer]) -> None:
    with pytest.raises(RuntimeError, match="test failed"), kind(root) as server:
        assert server.process is not None
        pid, port = server.process.pid, server.port
        # An idle client holds a per-connection child (sshd's leaves the session): stopping must end it too.
        idle = socket.create_connection(("127.0.0.1", port), timeout=5)
        deadline = time.monotonic() + 5
        while not (children := descendants(pid)) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert children
        raise RuntimeError("test failed")
    idle.close()
    assert not alive(pid) and not any(map(alive, children))
    assert refused(port)


def test_http_server_stops(root: Path) -> None:
    with pytest.raises(RuntimeError, match="test failed"), GitHttp(root) as server:
        port = server.port
        assert git("ls-remote", server.url("missing.git")).returncode != 0
        raise RuntimeError("test failed")
    assert refused(port)
