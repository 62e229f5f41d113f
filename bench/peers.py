"""Rows from the other engineers' benchmark modules (bench/bench_*.py), run on one corpus.

Each module exposes `rows(tree, ...)`; its keyword parameters among `source` (the corpus's repository) and
`name` are filled in. A row is a bench.table.Row, a mapping of Row's fields, or an object with `figure`,
`ours`, `peer` and `goal` (the largest acceptable ratio; the unit is in the figure's text).
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping
from pathlib import Path

from bench.corpora import Corpus
from bench.table import Row, from_mapping

HERE = Path(__file__).resolve().parent
EXPECTED = ("bench_9p", "bench_unikernel", "bench_fuse")


def _row(item: object) -> Row:
    if isinstance(item, Row):
        return item
    if isinstance(item, Mapping):
        return from_mapping(item)
    figure, ours, peer, goal = (getattr(item, k) for k in ("figure", "ours", "peer", "goal"))
    return Row(figure, ours, peer, unit="", limit=goal)


def modules() -> list[str]:
    found = {p.stem for p in HERE.glob("bench_*.py")}
    return sorted(found | set(EXPECTED))


def rows_of(name: str, corpus: Corpus) -> list[Row]:
    """The module's rows, or one row saying why there are none (absent, or failed)."""
    if not (HERE / f"{name}.py").exists():
        return [Row(f"{name}: not present, skipped", None)]
    try:
        module = importlib.import_module(f"bench.{name}")
        produce = module.rows
        offered = {"source": corpus.repo, "name": corpus.name}
        accepted = inspect.signature(produce).parameters
        return [_row(r) for r in produce(corpus.tree, **{k: v for k, v in offered.items() if k in accepted})]
    except Exception as e:  # another module's failure is reported, not fatal to the table
        return [Row(f"{name}: failed, skipped", None, note=f"{type(e).__name__}: {e}"[:300])]
