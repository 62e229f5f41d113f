"""Several refs and history (issue 14): docteur diff across 100 commits of a large tree against
git diff --name-status, and the size of a two-ref image with history against git pack-objects."""

from __future__ import annotations

import random
import shutil
import subprocess
import sys
from pathlib import Path

import docteur
from bench.corpora import GIT_ENV, WORK, Corpus
from bench.measure import interleaved, run
from bench.table import Row
from docteur.make import make
from docteur.sections import PATHS

DOCTEUR = Path(sys.executable).parent / "docteur"
COMMITS = 100


def _with_history(corpus: Corpus) -> Path:
    """A copy of the corpus's repository with COMMITS more commits on main, each editing a few files,
    and a branch `side` COMMITS // 2 commits back (made once)."""
    assert corpus.repo is not None
    repo = WORK / "history" / f"{corpus.name}.git"
    stamp = repo / "bench-history"
    if stamp.exists():
        return repo
    shutil.rmtree(repo, ignore_errors=True)
    repo.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "clone", "-q", "--bare", str(corpus.repo), str(repo)], check=True, env=GIT_ENV)
    files = (
        subprocess.run(
            ["git", f"--git-dir={repo}", "ls-tree", "-r", "--name-only", "HEAD"],
            check=True,
            capture_output=True,
            env=GIT_ENV,
        )
        .stdout.decode()
        .splitlines()
    )
    rng = random.Random(17)
    stream = [b"reset refs/heads/main\nfrom refs/heads/main^0\n"]
    for k in range(COMMITS):
        stream.append(
            b"commit refs/heads/main\ncommitter Bench <b@d.invalid> %d +0000\ndata 9\nedit %03d\n"
            % (1_700_000_100 + k, k)
        )
        for name in rng.sample(files, 3):
            body = b"edited in commit %d of the bench history\n" % k
            stream.append(b"M 100644 inline %s\ndata %d\n%s\n" % (name.encode(), len(body), body))
        if k == COMMITS // 2:
            stream.append(b"reset refs/heads/side\nfrom refs/heads/main\n")
    subprocess.run(
        ["git", f"--git-dir={repo}", "fast-import", "--quiet"],
        input=b"".join(stream),
        check=True,
        env=GIT_ENV,
    )
    subprocess.run(["git", f"--git-dir={repo}", "gc", "-q"], check=True, env=GIT_ENV)
    stamp.write_text("1")
    return repo


def rows(corpus: Corpus, runs: int) -> list[Row]:
    repo = _with_history(corpus)
    where = WORK / "history" / f"{corpus.name}-images"
    shutil.rmtree(where, ignore_errors=True)
    where.mkdir(parents=True)
    image = where / "two-refs.img"
    make(str(repo), image, branch=["main", "side"], history=True, quiet=True)
    old = f"main~{COMMITS}"
    base = subprocess.run(
        ["git", f"--git-dir={repo}", "rev-parse", old], check=True, capture_output=True, text=True
    ).stdout.strip()
    best = interleaved(
        {
            "ours": lambda: run([DOCTEUR, "diff", image, base, "main"]),
            "git": lambda: run(
                ["git", f"--git-dir={repo}", "diff", "--no-renames", "--name-status", old, "main"]
            ),
        },
        runs,
    )
    listing = subprocess.run(
        ["git", f"--git-dir={repo}", "rev-list", "--objects", "main", "side"], check=True, capture_output=True
    ).stdout
    (where / "objects.txt").write_bytes(listing)
    run(
        ["git", f"--git-dir={repo}", "pack-objects", "-q", "--window=10", "--depth=50", str(where / "git")],
        stdin=where / "objects.txt",
    )
    git_size = sum(p.stat().st_size for p in where.glob("git-*.*") if p.suffix in (".pack", ".idx"))
    label = f"{corpus.name}, {corpus.files} files"
    return [
        Row(
            f"docteur diff of two commits {COMMITS} apart ({label})",
            best["ours"],
            best["git"],
            peer_name="git diff --name-status",
            limit=1.0,
        ),
        Row(
            f"image of 2 refs with --history, size ({label}, {COMMITS + 1}+ commits)",
            image.stat().st_size / 1e6,
            git_size / 1e6,
            unit="MB",
            peer_name="git pack-objects",
            limit=1.0,
            note=_size_note(image, git_size),
        ),
    ]


def _size_note(image: Path, git_size: int) -> str:
    """Where the image's bytes go: its PACK and IDX against git's, and the path index on top."""
    with docteur.open(image) as img:
        pack_and_idx = img.placement.idx_end
        found = img.sections.find(PATHS) if img.sections is not None else None
    paths = found.length if found is not None else 0
    return (
        f"header, PACK and IDX {pack_and_idx / 1e6:.2f} MB ({pack_and_idx / git_size:.3f}x git's);"
        f" the path index adds {paths / 1e6:.2f} MB, most of it the 20-byte ids of every distinct tree's"
        " entries, carried verbatim so that no lookup takes the index on trust"
    )
