"""Several refs in one image: -b repeated, --all-branches, --tags; img.refs, img.at(), verify and info."""

from __future__ import annotations

from pathlib import Path

import pytest
from gitservers import GitDaemon, make_repo
from trees import FILE, git, read_image_tree, write_tree

import docteur
from docteur.errors import DocteurError, SourceError
from docteur.make import make
from docteur.reindex import reindex
from docteur.verify import verify


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """main (2 commits), feature (1 more), an annotated tag v1 on feature, a lightweight tag old."""
    root = tmp_path_factory.mktemp("refs") / "repo"
    write_tree(root, {b"a.txt": (FILE, b"a\n" * 100), b"d/shared.txt": (FILE, b"shared\n" * 50)})
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "first")
    git(root, "tag", "old")
    write_tree(root, {b"a.txt": (FILE, b"a\n" * 101)})
    git(root, "commit", "-q", "-am", "second")
    git(root, "checkout", "-q", "-b", "feature")
    write_tree(root, {b"f.txt": (FILE, b"feature\n")})
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "feature")
    git(root, "tag", "-a", "v1", "-m", "v1")
    git(root, "checkout", "-q", "main")
    return root


def rev(repo: Path, name: str) -> str:
    return git(repo, "rev-parse", f"{name}^{{commit}}").decode().strip()


def test_several_refs_in_one_image(repo: Path, tmp_path: Path) -> None:
    image = tmp_path / "refs.img"
    made = make(str(repo), image, branch=["feature", "main"], tags=True, quiet=True)
    assert made.commit == rev(repo, "feature")  # the first ref is the header's commit
    with docteur.open(image) as img:
        assert img.commit == rev(repo, "feature")
        assert img.refs == {
            "refs/heads/feature": rev(repo, "feature"),
            "refs/heads/main": rev(repo, "main"),
            "refs/tags/old": rev(repo, "old"),
            "refs/tags/v1": rev(repo, "v1"),  # peeled: an annotated tag gives its commit
        }
        main = img.at("main")
        assert main.commit == rev(repo, "main") and main.indexed
        assert main.listdir("") == ["a.txt", "d"] and img.listdir("") == ["a.txt", "d", "f.txt"]
        assert img.at("refs/tags/old").read("a.txt") == b"a\n" * 100
        assert img.at("v1").read("f.txt") == b"feature\n"
        assert img.at(rev(repo, "main")).stat("a.txt").size == 202
        for name in img.refs:
            view = img.at(name)
            assert read_image_tree(view) == read_image_tree(img.at(view.commit))
        with pytest.raises(KeyError):
            img.at("nowhere")
    report = verify(str(image))
    assert report.ok, report.problems
    assert report.refs == {name: commit for name, commit in docteur.open(image).refs.items()}


def test_all_branches_puts_the_head_branch_first(repo: Path, tmp_path: Path) -> None:
    image = tmp_path / "all.img"
    make(str(repo), image, all_branches=True, quiet=True)
    with docteur.open(image) as img:
        assert list(img.refs) == ["refs/heads/main", "refs/heads/feature"]
        assert img.commit == rev(repo, "main")


def test_history_of_each_ref_and_a_view_of_an_old_commit(repo: Path, tmp_path: Path) -> None:
    image = tmp_path / "history.img"
    make(str(repo), image, branch=["main", "feature"], history=True, quiet=True)
    first = rev(repo, "main~1")
    with docteur.open(image) as img:
        old = img.at(first)  # in the history, not a ref: read through its trees
        assert not old.indexed and old.read("a.txt") == b"a\n" * 100
        assert old.info.parents == []


def test_an_image_of_head_alone_records_no_ref(repo: Path, tmp_path: Path) -> None:
    image = tmp_path / "head.img"
    make(str(repo), image, quiet=True)
    with docteur.open(image) as img:
        assert img.refs == {"HEAD": rev(repo, "main")}
        assert [s.name for s in img.sections.sections] == ["paths"]  # type: ignore[union-attr]


def test_reindex_keeps_the_refs(repo: Path, tmp_path: Path) -> None:
    image = tmp_path / "r.img"
    make(str(repo), image, branch=["main", "feature"], quiet=True)
    copy = tmp_path / "copy.img"
    reindex(image, copy)
    assert copy.read_bytes() == image.read_bytes()


def test_refs_errors(repo: Path, tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="unknown ref 'nope'"):
        make(str(repo), tmp_path / "x.img", branch=["main", "nope"], quiet=True)
    with pytest.raises(DocteurError, match="need the index"):
        make(str(repo), tmp_path / "x.img", branch=["main", "feature"], index=False, quiet=True)
    (tmp_path / "dir").mkdir()
    with pytest.raises(SourceError, match=r"-b main --tags given, but .* is a directory"):
        make(str(tmp_path / "dir"), tmp_path / "x.img", branch="main", tags=True, quiet=True)
    assert not (tmp_path / "x.img").exists()


def test_cli_lists_the_refs(cli, repo: Path, tmp_path: Path) -> None:
    image = tmp_path / "cli.img"
    done = cli("docteur-make", "-q", repo, image, "-b", "main", "-b", "feature")
    assert done.returncode == 0, done.stderr
    verified = cli("docteur-verify", image).stdout.decode()
    assert f"ref\t: {rev(repo, 'feature')} refs/heads/feature\n" in verified
    info = cli("docteur", "info", image).stdout.decode()
    assert f"ref\t: {rev(repo, 'main')} refs/heads/main\n" in info


def test_several_refs_from_a_git_daemon(tmp_path: Path) -> None:
    served = make_repo(tmp_path / "srv" / "r.git", {"a.txt": b"a\n" * 40}, commits=2, tag="v1")
    git(served.path, "branch", "other", "HEAD~1")
    with GitDaemon(tmp_path / "srv") as daemon:
        image = tmp_path / "remote.img"
        make(daemon.url("r.git"), image, branch=["main", "other"], tags=True, quiet=True)
    with docteur.open(image) as img:
        assert img.refs["refs/heads/other"] == rev(served.path, "other")
        assert img.refs["refs/tags/v1"] == rev(served.path, "v1")
        assert img.at("other").read("a.txt") == b"a\n" * 20
    assert verify(str(image)).ok
