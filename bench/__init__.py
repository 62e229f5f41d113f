"""`make bench` (python -m bench [DIR-OR-REPO ...]): docteur side by side with git and squashfs.

Prints one table (figure, ours, peer, ratio, goal, met?) and writes it to bench/results.json. It fails only
on errors, never on a missed goal. Corpora are generated under bench/work/ (see corpora.py); any directory
or repository named on the command line is measured too.

Other engineers' benchmarks plug in as modules `bench/bench_<name>.py` exposing `rows(work: Path)`, which
returns a list of rows: `bench.table.Row` objects or dicts with the keys figure, ours, peer, unit, goal,
limit and relative (see table.py). A module that is absent is skipped with a note.
"""
