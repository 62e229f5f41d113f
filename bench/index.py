"""The path index's own costs (issue 10): its size beside the image, and what it adds to docteur-make."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import docteur
from bench.corpora import WORK, Corpus
from bench.images import DATE, Made
from bench.measure import interleaved, run
from bench.table import Row
from docteur.sections import PATHS

MAKE = Path(sys.executable).parent / "docteur-make"


def size(made: Made) -> Row:
    with docteur.open(made.image) as img:
        assert img.sections is not None, "bench images are made with a path index"
        paths = img.sections.find(PATHS)
        assert paths is not None
        share = paths.length / made.image.stat().st_size * 100
    return Row(
        f"path index size, % of the image ({made.corpus.name}, {made.files} files)",
        share,
        unit="%",
        limit=10,
        relative=False,
        note=f"{paths.length / 1e6:.2f} MB of {made.image.stat().st_size / 1e6:.2f} MB",
    )


def make_time(corpus: Corpus, runs: int) -> Row:
    """docteur-make with the index (the default) against --no-index, interleaved."""
    where = WORK / "make-index" / corpus.name
    shutil.rmtree(where, ignore_errors=True)
    where.mkdir(parents=True)
    source = corpus.repo if corpus.real and corpus.repo is not None else corpus.tree
    base = [MAKE, source, "--date", DATE, "-q"]
    best = interleaved(
        {
            "index": lambda: run([*base, where / "indexed.img"]),
            "plain": lambda: run([*base, "--no-index", where / "plain.img"]),
        },
        runs,
    )
    kind = "REPO" if corpus.real else "DIR"
    return Row(
        f"docteur-make {kind} with the path index vs without ({corpus.name})",
        best["index"],
        best["plain"],
        peer_name="--no-index",
        limit=1.05,
    )
