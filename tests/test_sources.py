"""Every kind of source, against real servers on 127.0.0.1, and every way a source can fail."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from gitservers import Executable, GitDaemon, GitHttp, SshServer, Symlink, make_repo
from trees import DIR, EXEC, FILE, LINK

import docteur
from docteur.errors import SourceError
from docteur.verify import verify

FILES = {
    "README.md": b"# served\n" + b"some prose that repeats itself. " * 60,
    "src/main.py": b"print('hello')\n" * 40,
    "src/run.sh": Executable(b"#!/bin/sh\necho run\n"),
    "latest": Symlink(b"src/main.py"),
}
EXPECTED = {
    b"README.md": (FILE, FILES["README.md"]),
    b"src": (DIR, b""),
    b"src/main.py": (FILE, FILES["src/main.py"]),
    b"src/run.sh": (EXEC, bytes(FILES["src/run.sh"])),
    b"latest": (LINK, b"src/main.py"),
}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("served")
    repo = make_repo(root / "repo.git", FILES, commits=3, tag="v1")
    make_repo(root / "other.git", {"only.txt": b"other branch\n"}, branch="dev")
    return root, repo


@pytest.fixture(scope="module")
def daemon(served) -> Iterator[GitDaemon]:
    with GitDaemon(served[0]) as server:
        yield server


@pytest.fixture(scope="module")
def http(served) -> Iterator[GitHttp]:
    with GitHttp(served[0], auth=("alice", "s3cret")) as server:
        yield server


@pytest.fixture(scope="module")
def sshd(served) -> Iterator[SshServer]:
    with SshServer(served[0]) as server:
        yield server


@pytest.fixture
def ssh_env(sshd: SshServer, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in sshd.client_env.items():
        monkeypatch.setenv(key, value)


def tree_of(image: Path) -> dict[bytes, tuple[int, bytes]]:
    from trees import image_tree

    return image_tree(image)


def check_image(image: Path, commit: str, *, commits: int = 1) -> None:
    report = verify(str(image))
    assert report.ok, report.problems
    assert report.info is not None and report.info.id == commit
    assert tree_of(image) == EXPECTED
    with docteur.open(image) as img:
        kinds = [img.objects.get(o)[0] for o in img.objects]
        assert kinds.count("commit") == commits


def test_git_daemon(make_image, daemon: GitDaemon, served) -> None:
    check_image(make_image(daemon.url("repo.git")), served[1].head)


def test_git_daemon_history(make_image, daemon: GitDaemon, served) -> None:
    check_image(make_image(daemon.url("repo.git"), history=True), served[1].head, commits=3)


def test_http_with_credentials_in_the_url(make_image, http: GitHttp, served) -> None:
    url = http.url("repo.git", user="alice", password="s3cret")
    check_image(make_image(url, branch="refs/heads/main"), served[1].head)


def test_http_wrong_password_is_an_authentication_failure(make_image, http: GitHttp) -> None:
    with pytest.raises(SourceError, match="authentication failed") as e:
        make_image(http.url("repo.git", user="alice", password="wrong"))
    assert "wrong" not in str(e.value)  # the password is never echoed


def test_ssh_url(make_image, sshd: SshServer, ssh_env: None, served) -> None:
    check_image(make_image(sshd.url("repo.git")), served[1].head)


def test_scp_like_address(make_image, sshd: SshServer, ssh_env: None, served) -> None:
    check_image(make_image(sshd.scp_url("repo.git"), branch="main"), served[1].head)


def test_ssh_refused_key(make_image, sshd: SshServer, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in sshd.stranger_env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SourceError, match=r"authentication failed.*permission denied"):
        make_image(sshd.url("repo.git"))


def test_file_url_bare_repository(make_image, served) -> None:
    check_image(make_image(f"file://{served[1].path}"), served[1].head)


def test_plain_path_non_bare_repository(make_image, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "work", FILES, bare=False)
    (repo.path / "untracked.txt").write_text("not committed")
    check_image(make_image(repo.path), repo.head)
    check_image(make_image(f"file://{repo.path}/"), repo.head)


def test_relativize_resolves_against_the_working_directory(
    make_image, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_repo(tmp_path / "here" / "repo", FILES, bare=False)
    monkeypatch.chdir(tmp_path / "here")
    check_image(make_image("relativize://repo"), repo.head)


def test_branch_tag_and_id_selection(make_image, served) -> None:
    root, repo = served
    check_image(make_image(repo.path, branch="v1"), repo.head)  # annotated tag, peeled
    image = make_image(repo.path, branch=repo.commits[0])
    with docteur.open(image) as img:
        assert img.commit == repo.commits[0]
        assert len(img.read("README.md")) < len(FILES["README.md"])
    with docteur.open(make_image(root / "other.git", branch="dev")) as img:
        assert img.listdir() == ["only.txt"]


def test_history_embeds_every_commit_and_no_history_only_one(make_image, served) -> None:
    repo = served[1]
    with docteur.open(make_image(repo.path, history=True)) as img:
        assert {o for o in img.objects if img.objects.get(o)[0] == "commit"} == set(repo.commits)
        assert img.info.parents == [repo.commits[1]]
    with docteur.open(make_image(repo.path)) as img:
        assert [o for o in img.objects if img.objects.get(o)[0] == "commit"] == [repo.head]


@pytest.mark.parametrize("where", ["local", "daemon", "http"])
def test_unknown_ref(make_image, served, daemon: GitDaemon, http: GitHttp, where: str) -> None:
    source = {
        "local": str(served[1].path),
        "daemon": daemon.url("repo.git"),
        "http": http.url("repo.git", user="alice", password="s3cret"),
    }[where]
    with pytest.raises(SourceError, match="unknown ref 'nope'"):
        make_image(source, branch="nope")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("scheme", ["git", "http"])
def test_unreachable_host(make_image, scheme: str) -> None:
    with pytest.raises(SourceError, match=r"(?i)refused|cannot connect|cannot reach"):
        make_image(f"{scheme}://127.0.0.1:{_closed_port()}/repo.git")


def test_unknown_repository_on_a_server(make_image, daemon: GitDaemon) -> None:
    with pytest.raises(SourceError, match=r"missing\.git"):
        make_image(daemon.url("missing.git"))


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("http://", "malformed URL"),
        ("git://:9418/x.git", "malformed URL"),
        ("http://127.0.0.1:notaport/x.git", "malformed URL"),
        ("git://127.0.0.1/", "no repository path"),
        ("ftp://example.org/x.git", "unsupported source scheme 'ftp'"),
        ("does/not/exist", "source not found"),
    ],
)
def test_malformed_sources(make_image, source: str, message: str) -> None:
    with pytest.raises(SourceError, match=message):
        make_image(source)


def test_branch_on_a_directory_is_refused(make_image, tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    with pytest.raises(SourceError, match="is a directory, not a repository"):
        make_image(tmp_path / "d", branch="main")


def test_empty_repository(make_image, tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", "--bare", str(tmp_path / "e.git")], check=True)
    with pytest.raises(SourceError, match="no HEAD commit"):
        make_image(tmp_path / "e.git")


def test_ssh_url_without_server_environment_names_the_host(make_image) -> None:
    env_before = os.environ.get("GIT_SSH_COMMAND")
    assert env_before is None or "docteur" not in env_before
    with pytest.raises(SourceError):
        make_image(f"ssh://nobody@127.0.0.1:{_closed_port()}/repo.git")


def test_remote_images_are_reproducible(make_image, daemon: GitDaemon) -> None:
    url = daemon.url("repo.git")
    assert make_image(url, history=True).read_bytes() == make_image(url, history=True).read_bytes()


@pytest.mark.parametrize("bad_name", [b"..", b".", b"a/b"])
def test_a_repository_with_a_forged_tree_is_refused(make_image, tmp_path: Path, bad_name: bytes) -> None:
    repo = tmp_path / "forged.git"
    subprocess.run(["git", "init", "-q", "--bare", str(repo)], check=True)

    def git(*args: str, data: bytes = b"") -> str:
        out = subprocess.run(
            ["git", "--git-dir", str(repo), *args], input=data, capture_output=True, check=True
        )
        return out.stdout.decode().strip()

    blob = git("hash-object", "-w", "--stdin", data=b"payload")
    tree = git(
        "hash-object",
        "-w",
        "--literally",
        "-t",
        "tree",
        "--stdin",
        data=b"100644 " + bad_name + b"\0" + bytes.fromhex(blob),
    )
    commit = git("commit-tree", tree, "-m", "forged")
    git("update-ref", "refs/heads/main", commit)
    git("symbolic-ref", "HEAD", "refs/heads/main")
    with pytest.raises(SourceError, match=f"malformed source: tree {tree}: "):
        make_image(repo)
    assert list(tmp_path.glob("image-*")) == []
