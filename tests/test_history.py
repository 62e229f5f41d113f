"""docteur diff and docteur log against git's own answers: git diff --no-renames --name-status, git log."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from histories import git_changes
from trees import DIR, EXEC, FILE, LINK, git, write_tree

import docteur
from bench.corpora import SHARED
from docteur.make import make


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("history") / "repo"
    write_tree(
        root,
        {
            b"keep.txt": (FILE, b"same\n"),
            b"edit.txt": (FILE, b"before\n"),
            b"gone.txt": (FILE, b"bye\n"),
            b"run.sh": (FILE, b"#!/bin/sh\n"),
            b"link": (LINK, b"keep.txt"),
            b"becomes-dir": (FILE, b"a file first\n"),
            b"deep/a/b/c.txt": (FILE, b"deep\n"),
            b"deep/a/untouched.txt": (FILE, b"untouched\n"),
        },
    )
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "first")
    for name in ("edit.txt", "gone.txt", "becomes-dir"):
        (root / name).unlink()
    (root / "link").unlink()
    write_tree(
        root,
        {
            b"edit.txt": (FILE, b"after\n"),
            b"run.sh": (EXEC, b"#!/bin/sh\n"),
            b"link": (LINK, b"edit.txt"),
            b"becomes-dir/inside.txt": (FILE, b"now a folder\n"),
            b"deep/a/b/c.txt": (FILE, b"deeper\n"),
            b"new/dir/file.txt": (FILE, b"new\n"),
            b"empty-in-git": (DIR, b""),
        },
    )
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "second\n\nwith a body")
    return root


def test_diff_lists_what_git_lists(repo: Path, tmp_path: Path) -> None:
    image = tmp_path / "h.img"
    make(str(repo), image, history=True, quiet=True)
    with docteur.open(image) as img:
        first = git(repo, "rev-parse", "HEAD~1").decode().strip()
        changes = img.diff(img.at(first))
        assert changes == git_changes(repo, "HEAD~1", "HEAD")
        assert ("*", "run.sh") in changes and ("-", "becomes-dir") in changes
        assert img.at(first).diff(img) == git_changes(repo, "HEAD", "HEAD~1")
        assert img.diff(img) == []


def test_log_lists_what_git_log_lists(repo: Path, tmp_path: Path, cli) -> None:
    image = tmp_path / "h.img"
    make(str(repo), image, history=True, quiet=True)
    expected = git(repo, "log", "--format=%H %s").decode()
    assert cli("docteur", "log", image).stdout.decode() == expected
    assert cli("docteur", "log", image, "-n", "1").stdout.decode() == expected.splitlines(True)[0]
    shallow = tmp_path / "one.img"
    make(str(repo), shallow, quiet=True)  # without --history: the commit alone
    assert cli("docteur", "log", shallow).stdout.decode() == expected.splitlines(True)[0]


def test_cli_diff_lines_and_json(repo: Path, tmp_path: Path, cli) -> None:
    image = tmp_path / "h.img"
    make(str(repo), image, history=True, quiet=True)
    first = git(repo, "rev-parse", "HEAD~1").decode().strip()
    done = cli("docteur", "diff", image, first, "HEAD")
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode() == "".join(f"{w} {p}\n" for w, p in git_changes(repo, "HEAD~1", "HEAD"))
    missing = cli("docteur", "diff", image, "nope", "HEAD")
    assert missing.returncode == 1 and b"no ref or commit 'nope'" in missing.stderr


def test_diff_and_log_skip_typer_and_behave_the_same(repo: Path, tmp_path: Path, cli) -> None:
    image = tmp_path / "h.img"
    make(str(repo), image, history=True, quiet=True)
    first = git(repo, "rev-parse", "HEAD~1").decode().strip()
    cases = [
        ["diff", image, first, "HEAD"],
        ["diff", image, "HEAD", first],
        ["diff", image, "nope", "HEAD"],
        ["log", image],
        ["log", image, first],
        ["log", tmp_path / "missing.img"],
    ]
    for args in cases:
        fast = cli("docteur", *args)
        typer = subprocess.run([sys.executable, "-m", "docteur", *map(str, args)], capture_output=True)
        assert fast.stdout or fast.stderr, args
        assert (fast.returncode, fast.stdout, fast.stderr) == (typer.returncode, typer.stdout, typer.stderr)
    for args in cases[0], cases[3]:
        imports = subprocess.run(
            [sys.executable, "-X", "importtime", Path(sys.executable).parent / "docteur", *map(str, args)],
            capture_output=True,
            check=True,
        ).stderr.decode()
        modules = {line.split("|")[-1].strip().split(".")[0] for line in imports.splitlines()}
        assert "docteur" in modules and not modules & {"typer", "click", "rich"}, args


@pytest.mark.skipif(not (SHARED / "peps.git").is_dir(), reason="../shared/corpora is not here")
@pytest.mark.parametrize("name", ["peps", "icons"])
def test_real_history(name: str, tmp_path: Path) -> None:
    """A real repository: diff across 100 commits and the whole (shallow) log, as git gives them."""
    repo = SHARED / f"{name}.git"
    env = {**os.environ, "GIT_DIR": str(repo)}
    image = tmp_path / f"{name}.img"
    make(str(repo), image, history=True, quiet=True)

    def run(*args: str) -> str:
        return subprocess.run(["git", *args], env=env, capture_output=True, check=True).stdout.decode()

    with docteur.open(image) as img:
        old = run("rev-parse", "HEAD~100").strip()
        assert img.diff(img.at(old)) == git_changes(repo, old, "HEAD")
        assert [f"{c.id} " for c in img.log()] == [
            line[:41] for line in run("log", "--format=%H %s").splitlines()
        ]
