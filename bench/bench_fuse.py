"""Walk and read a tree through a FUSE mount: docteur-mount vs squashfuse on a squashfs (zstd) of it.

Three figures: `find` (names only), `ls -lR` (every entry's attributes) and `cat` of every file. Both
mounts are fresh for each figure and round (nothing in the kernel's caches from before), both images are
read once beforehand (so the disk is out of the picture), and the same command reads both in the same
run. Each figure is the best of a few rounds: the least disturbed by other work.

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


# What each figure runs in the mounted tree.
COMMANDS = {
    "find": ["find", "."],
    "ls -lR": ["ls", "-lR", "."],
    "cat every file": ["find", ".", "-type", "f", "-exec", "cat", "{}", "+"],
}
GOALS = {"find": 1.5, "ls -lR": 1.0, "cat every file": 1.0}


def _timed(mount: Callable[[Path], None], mountpoint: Path, command: list[str]) -> float:
    mountpoint.mkdir(exist_ok=True)
    mount(mountpoint)
    try:
        start = time.perf_counter()
        with open(os.devnull, "wb") as sink:
            subprocess.run(command, cwd=mountpoint, stdout=sink, check=True, timeout=900)
        return time.perf_counter() - start
    finally:
        _unmount(mountpoint)


def rows(tree: Path, name: str | None = None, rounds: int = ROUNDS) -> list[Row]:
    """A row per command: its time over `tree` through docteur-mount and through squashfuse."""
    from docteur.make import make, parse_date

    with tempfile.TemporaryDirectory(prefix="bench-fuse-") as scratch:
        work = Path(scratch)
        ours_img, peer_img = work / "tree.img", work / "tree.squashfs"
        make(str(tree), ours_img, date=parse_date("2020-10-10T08:00:00+00:00"), quiet=True)
        _run("mksquashfs", tree, peer_img, "-comp", "zstd", "-quiet", "-no-progress", "-noappend")
        for image in (ours_img, peer_img):
            image.read_bytes()  # both images in the page cache

        def mount_ours(mountpoint: Path) -> None:
            _run(BIN / "docteur-mount", ours_img, mountpoint)

        def mount_peer(mountpoint: Path) -> None:
            _run("squashfuse", peer_img, mountpoint)

        best: dict[str, tuple[float, float]] = {}
        for what, command in COMMANDS.items():
            ours = peer = float("inf")
            for _ in range(rounds):
                ours = min(ours, _timed(mount_ours, work / "ours", command))
                peer = min(peer, _timed(mount_peer, work / "peer", command))
            best[what] = (ours, peer)
    files = sum(len(f) for _, _, f in os.walk(tree))
    label = name or tree.name
    return [
        Row(f"{what} through FUSE ({label}, {files} files), s", ours, peer, GOALS[what])
        for what, (ours, peer) in best.items()
    ]


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
