"""A repository with two branches and several commits of every kind of change, and git's own answers
about it in the formats DataKit's files use."""

from __future__ import annotations

from pathlib import Path

from trees import EXEC, FILE, LINK, git, write_tree

# DataKit's diff/ signs for git's --name-status letters (a type change, file to symlink, is a change).
STATUS = {"A": "+", "D": "-", "M": "*", "T": "*"}


def _commit(root: Path, message: str, when: int) -> None:
    git(root, "add", "-A")
    stamp = f"{when} +0000"
    git(root, "-c", f"user.name=T{when}", "commit", "-q", "-m", message, "--date", stamp)


def branched_repo(root: Path) -> Path:
    """main: 3 commits; feature: 2 more from main's second. Between them: files added, removed and
    modified, a file made a symlink and one made a directory, a mode change, a deep edit; a tag v1."""
    write_tree(
        root,
        {
            b"a.txt": (FILE, b"alpha\n" * 20),
            b"gone.txt": (FILE, b"to be removed\n"),
            b"kind": (FILE, b"a file, then a directory\n"),
            b"ln": (LINK, b"a.txt"),
            b"run.sh": (EXEC, b"#!/bin/sh\necho run\n"),
            b"sub/b.txt": (FILE, b"bravo\n"),
            b"sub/deep/c.txt": (FILE, b"charlie\n"),
        },
    )
    git(root, "init", "-q", "-b", "main")
    _commit(root, "first", 1_700_000_000)
    write_tree(root, {b"a.txt": (FILE, b"alpha\n" * 21), b"new/x.txt": (FILE, b"x\n")})
    _commit(root, "second\n\nwith a body", 1_700_000_100)
    git(root, "tag", "v1")
    git(root, "checkout", "-q", "-b", "feature")
    (root / "kind").unlink()
    (root / "ln").unlink()
    write_tree(
        root,
        {
            b"feature.txt": (FILE, b"feature\n"),
            b"sub/deep/c.txt": (FILE, b"charlie, edited\n"),
            b"kind/inner.txt": (FILE, b"inside\n"),
            b"ln": (FILE, b"was a link\n"),
        },
    )
    _commit(root, "feature one", 1_700_000_200)
    (root / "sub" / "b.txt").unlink()
    _commit(root, "feature two", 1_700_000_300)
    git(root, "checkout", "-q", "main")
    (root / "gone.txt").unlink()
    (root / "run.sh").chmod(0o644)
    write_tree(root, {b"sub/deep/more.txt": (FILE, b"more\n")})
    _commit(root, "third", 1_700_000_400)
    return root


def rev(repo: Path, name: str) -> str:
    return git(repo, "rev-parse", name).decode().strip()


def commits(repo: Path) -> list[str]:
    """Every commit of every branch, newest first."""
    return git(repo, "rev-list", "--branches").decode().split()


def git_changes(repo: Path, old: str, new: str) -> list[tuple[str, str]]:
    """What `git diff --no-renames --name-status` says, in DataKit's words."""
    out = git(repo, "diff", "--no-renames", "--name-status", "-z", old, new).split(b"\0")
    pairs = zip(out[0:-1:2], out[1:-1:2], strict=True)
    return [(STATUS[status.decode()], path.decode("utf-8", "surrogateescape")) for status, path in pairs]


def diff_lines(repo: Path, old: str, new: str) -> bytes:
    """What DataKit's diff/<old> under `new` holds: a line per change."""
    lines = (f"{what} {path}\n" for what, path in git_changes(repo, old, new))
    return "".join(lines).encode("utf-8", "surrogateescape")
