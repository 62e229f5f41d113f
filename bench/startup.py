"""Goal 6 of issue 3 (measured only: the CLI belongs to another engineer): docteur-cat on a small image."""

from __future__ import annotations

import sys
from pathlib import Path

from bench.images import Made
from bench.measure import interleaved, run
from bench.table import Row

CAT = Path(sys.executable).parent / "docteur-cat"


def cat_start(made: Made, runs: int) -> Row:
    ours = [CAT, made.image, made.first]
    peer = ["git", f"--git-dir={made.peer_repo}", "cat-file", "-p", f"{made.blobs.read_text().split()[0]}"]
    best = interleaved({"ours": lambda: run(ours), "git": lambda: run(peer)}, runs * 4)
    return Row(
        f"docteur-cat IMAGE PATH, wall ({made.corpus.name})",
        best["ours"] * 1000,
        best["git"] * 1000,
        unit="ms",
        peer_name="git cat-file -p",
        limit=100.0,
        relative=False,
    )
