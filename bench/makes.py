"""Goal 5 of issue 3: docteur-make from a directory (vs mksquashfs, and git's pack size) and from a
repository (vs git pack-objects of the same objects)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from bench.corpora import WORK, Corpus
from bench.images import DATE
from bench.measure import interleaved, run
from bench.table import Row

MAKE = Path(sys.executable).parent / "docteur-make"
WINDOW = ["--window=10", "--depth=50"]


def _scratch(corpus: Corpus) -> Path:
    where = WORK / "make" / corpus.name
    shutil.rmtree(where, ignore_errors=True)
    where.mkdir(parents=True)
    return where


def _head_objects(repo: Path, into: Path) -> Path:
    """The ids of the HEAD commit and of everything in its tree: what an image of HEAD holds."""
    listing = subprocess.run(
        ["git", f"--git-dir={repo}", "rev-list", "--objects", "--no-walk", "HEAD"],
        check=True,
        capture_output=True,
    ).stdout
    into.write_bytes(listing)
    return into


def _pack_objects(repo: Path, out: Path, *extra: str) -> list[str]:
    return ["git", f"--git-dir={repo}", "pack-objects", "-q", *WINDOW, *extra, str(out)]


def from_directory(corpus: Corpus, runs: int) -> list[Row]:
    where = _scratch(corpus)
    image, squash = where / "disk.img", where / "disk.squashfs"
    ours_cmd = [MAKE, corpus.tree, image, "--date", DATE, "-q"]
    peer_cmd = ["mksquashfs", corpus.tree, squash, "-comp", "zstd", "-noappend", "-quiet", "-no-progress"]
    best = interleaved({"ours": lambda: run(ours_cmd), "mksquashfs": lambda: run(peer_cmd)}, runs)
    label = f"{corpus.name}, {corpus.files} files"
    rows = [
        Row(
            f"docteur-make DIR, time ({label})",
            best["ours"],
            best["mksquashfs"],
            peer_name="mksquashfs zstd",
            limit=1.0,
        )
    ]
    if corpus.repo is not None:
        objects = _head_objects(corpus.repo, where / "objects.txt")
        # From scratch, as for a directory: no delta or compressed data reused from the repository.
        run(_pack_objects(corpus.repo, where / "git", "--no-reuse-delta", "--no-reuse-object"), stdin=objects)
        git_size = sum(p.stat().st_size for p in where.glob("git-*.*") if p.suffix in (".pack", ".idx"))
        rows.append(
            Row(
                f"docteur-make DIR, image size ({label})",
                image.stat().st_size / 1e6,
                git_size / 1e6,
                unit="MB",
                peer_name="git pack+idx",
                limit=1.0,
                note=f"squashfs zstd: {squash.stat().st_size / 1e6:.2f} MB",
            )
        )
    return rows


def from_repository(corpus: Corpus, runs: int) -> list[Row]:
    assert corpus.repo is not None
    where = _scratch(corpus)
    objects = _head_objects(corpus.repo, where / "objects.txt")
    ours_cmd = [MAKE, corpus.repo, where / "disk.img", "-q"]
    peer_cmd = _pack_objects(corpus.repo, where / "git")
    best = interleaved({"ours": lambda: run(ours_cmd), "git": lambda: run(peer_cmd, stdin=objects)}, runs)
    return [
        Row(
            f"docteur-make REPO, time ({corpus.name}, {corpus.files} files)",
            best["ours"],
            best["git"],
            peer_name="git pack-objects",
            limit=1.0,
        )
    ]
