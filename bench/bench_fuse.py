"""Read every file through a FUSE mount: docteur-mount vs squashfuse on a squashfs (zstd) of the same tree.

Both mounts are fresh for each round (nothing in the kernel's page cache from a previous round), both images
are read once beforehand (so the disk is out of the picture), and the same reader (`find -type f -exec cat`)
reads both in the same run. The figure is the best of a few rounds: the least disturbed by other work.

    python -m bench.bench_fuse [DIR]     # default: the generated "book" corpus
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

ROUNDS = 3
BIN = Path(sys.executable).parent


class Row(NamedTuple):
    figure: str
    ours: float  # seconds (lower is better)
    peer: float  # seconds
    goal: float  # ours / peer must be at most this: 1.0 means at least squashfuse's throughput


def _run(*command: str | Path) -> None:
    subprocess.run([str(c) for c in command], check=True, capture_output=True, timeout=600)


def _unmount(mountpoint: Path) -> None:
    if os.path.ismount(mountpoint):
        _run("fusermount3", "-u", mountpoint)


def _read_everything(mountpoint: Path) -> float:
    start = time.perf_counter()
    with open(os.devnull, "wb") as sink:
        subprocess.run(
            ["find", ".", "-type", "f", "-exec", "cat", "{}", "+"],
            cwd=mountpoint,
            stdout=sink,
            check=True,
            timeout=600,
        )
    return time.perf_counter() - start


def _timed(mount: Callable[[Path], None], mountpoint: Path) -> float:
    mountpoint.mkdir(exist_ok=True)
    mount(mountpoint)
    try:
        return _read_everything(mountpoint)
    finally:
        _unmount(mountpoint)


def rows(tree: Path, name: str | None = None, rounds: int = ROUNDS) -> list[Row]:
    """One row: the time to cat every file of `tree` through docteur-mount and through squashfuse."""
    from docteur.make import make, parse_date

    with tempfile.TemporaryDirectory(prefix="bench-fuse-") as scratch:
        work = Path(scratch)
        ours_img, peer_img = work / "tree.img", work / "tree.squashfs"
        make(str(tree), ours_img, date=parse_date("2020-10-10T08:00:00+00:00"), quiet=True)
        _run("mksquashfs", tree, peer_img, "-comp", "zstd", "-quiet", "-no-progress", "-noappend")
        for image in (ours_img, peer_img):
            image.read_bytes()  # both images in the page cache
        ours = peer = float("inf")
        for _ in range(rounds):
            ours = min(ours, _timed(lambda m: _run(BIN / "docteur-mount", ours_img, m), work / "ours"))
            peer = min(peer, _timed(lambda m: _run("squashfuse", peer_img, m), work / "peer"))
    files = sum(len(f) for _, _, f in os.walk(tree))
    label = name or tree.name
    return [Row(f"cat every file through FUSE ({label}, {files} files), s", ours, peer, 1.0)]


def main(argv: list[str]) -> None:
    if argv:
        tree, name = Path(argv[0]), None
    else:
        from bench.corpora import generated

        corpus = generated("book")
        tree, name = corpus.tree, corpus.name
    for row in rows(tree, name):
        ratio = row.ours / row.peer
        met = "met" if ratio <= row.goal else "missed"
        print(f"{row.figure}: docteur {row.ours:.3f}  squashfuse {row.peer:.3f}  ratio {ratio:.2f} ({met})")


if __name__ == "__main__":
    main(sys.argv[1:])
