"""Trees on disk and in images, as comparable dicts: path bytes -> (mode, content)."""

from __future__ import annotations

import os
import stat
import subprocess
from collections.abc import Mapping
from pathlib import Path

import docteur
from docteur.fs.image import Image

DIR = 0o40000
FILE = 0o100644
EXEC = 0o100755
LINK = 0o120000
# Fixed identity and dates: commits made by the tests have stable ids.
GIT_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_AUTHOR_NAME": "Docteur Tests",
    "GIT_AUTHOR_EMAIL": "tests@docteur.invalid",
    "GIT_COMMITTER_NAME": "Docteur Tests",
    "GIT_COMMITTER_EMAIL": "tests@docteur.invalid",
    "GIT_AUTHOR_DATE": "1700000000 +0000",
    "GIT_COMMITTER_DATE": "1700000000 +0000",
}

Tree = dict[bytes, tuple[int, bytes]]


def write_tree(root: Path, spec: Mapping[bytes, tuple[int, bytes]]) -> None:
    """Create files (FILE/EXEC), symlinks (LINK, content = target) and directories (DIR) under root."""
    base = os.fsencode(root)
    os.makedirs(base, exist_ok=True)
    for path, (mode, content) in sorted(spec.items()):
        full = os.path.join(base, path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        if mode == DIR:
            os.makedirs(full, exist_ok=True)
        elif mode == LINK:
            os.symlink(content, full)
        else:
            with open(full, "wb") as f:
                f.write(content)
            os.chmod(full, 0o755 if mode == EXEC else 0o644)


def read_fs_tree(root: Path) -> Tree:
    """What a directory holds, in the terms an image keeps (exec bit, link targets, empty directories)."""
    base = os.fsencode(root)
    tree: Tree = {}
    for dirpath, dirnames, filenames in os.walk(base):
        rel_dir = os.path.relpath(dirpath, base)
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            rel = name if rel_dir == b"." else os.path.join(rel_dir, name)
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                tree[rel] = (LINK, os.readlink(full))
            elif stat.S_ISDIR(st.st_mode):
                tree[rel] = (DIR, b"")
            elif stat.S_ISREG(st.st_mode):
                with open(full, "rb") as f:
                    tree[rel] = (EXEC if st.st_mode & stat.S_IXUSR else FILE, f.read())
    return tree


def read_image_tree(img: Image) -> Tree:
    tree: Tree = {}
    for dirpath, dirnames, filenames in img.walk():
        for name in dirnames + filenames:
            rel = f"{dirpath}/{name}" if dirpath else name
            raw = rel.encode("utf-8", "surrogateescape")
            st = img.stat(rel)
            tree[raw] = (st.mode, b"" if st.mode == DIR else img.read(rel))
            assert st.size == len(tree[raw][1])
    return tree


def image_tree(path: Path) -> Tree:
    with docteur.open(path) as img:
        return read_image_tree(img)


def without_empty_dirs(tree: Tree) -> Tree:
    """Git repositories cannot hold empty directories: the tree a commit of `tree` would have."""
    kept = {p: v for p, v in tree.items() if v[0] != DIR}
    for p in list(kept):
        parts = p.split(b"/")
        for i in range(1, len(parts)):
            kept[b"/".join(parts[:i])] = (DIR, b"")
    return kept


def git(cwd: Path, *args: str, input: bytes | None = None) -> bytes:
    return subprocess.run(
        ["git", *args], cwd=cwd, input=input, capture_output=True, check=True, env={**os.environ, **GIT_ENV}
    ).stdout


def commit_directory(directory: Path) -> str:
    """Turn a directory into a non-bare repository with one commit of all it holds; return the commit id."""
    git(directory, "init", "-q", "-b", "main")
    git(directory, "add", "-A")
    git(directory, "commit", "-q", "--allow-empty", "-m", "tree")
    return git(directory, "rev-parse", "HEAD").decode().strip()


def image_of(source: Path) -> Path:
    """Make `source` into source's sibling disk.img, quietly, at a fixed date (same tree, same bytes)."""
    from docteur.make import make, parse_date

    out = source.parent / "disk.img"
    make(str(source), out, date=parse_date("2020-10-10T08:00:00+00:00"), quiet=True)
    return out
