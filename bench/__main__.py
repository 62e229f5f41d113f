"""python -m bench [--runs N] [--quick] [--no-peers] [DIR-OR-REPO ...]: see bench/__init__.py."""

from __future__ import annotations

import argparse
import compileall
import os
import platform
import sys
import time
from pathlib import Path

from bench import corpora, history, index, makes, peers, reads, startup
from bench.images import image_of
from bench.table import Row, render, save

RESULTS = Path(__file__).resolve().parent / "results.json"


def _arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description="docteur vs git and squashfs")
    parser.add_argument("sources", nargs="*", help="more directories or repositories to measure")
    parser.add_argument("--runs", type=int, default=3, help="runs per figure, the best is kept (default 3)")
    parser.add_argument("--no-peers", action="store_true", help="skip the 9P, unikernel and FUSE modules")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = _arguments(argv)
    runs = max(1, args.runs)
    started = time.monotonic()
    # Processes start as a user's do: with their modules' bytecode cached (this environment may say
    # PYTHONDONTWRITEBYTECODE, which makes every start compile docteur again).
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    compileall.compile_dir(Path(__file__).resolve().parent.parent / "docteur", quiet=1)
    print("generating corpora (once) and images...", file=sys.stderr)
    tiny, book, pages, large, wide = (
        corpora.generated(n) for n in ("tiny", "book", "pages", "large", "wide")
    )
    real = corpora.shared()  # ../shared/corpora: real repositories, when present
    extra = [corpora.given(s) for s in args.sources]
    made = {c.name: image_of(c) for c in (tiny, book, pages, large, wide, *real, *extra)}
    rows: list[Row] = []
    for corpus in (book, pages, large, *real, *extra):
        print(f"reading {corpus.name}...", file=sys.stderr)
        rows += reads.full_read(made[corpus.name], runs)
    rows += reads.open_to_first_byte(made["wide"], made["tiny"], runs)
    rows.append(reads.fresh_process(made["pages"], runs))
    rows.append(reads.repeated_read(made["pages"], runs))
    rows.append(reads.peak_rss(made["pages"], runs))
    rows.append(reads.peak_rss(made["large"], runs))
    rows += [index.size(made[c.name]) for c in (book, pages, wide, *real)]
    for corpus in (book, pages, *real, *extra):
        print(f"making {corpus.name}...", file=sys.stderr)
        if corpus.files and not corpus.real:
            rows += makes.from_directory(corpus, max(1, runs // 2))
        if corpus.repo is not None:
            rows += makes.from_repository(corpus, runs)
    rows.append(index.make_time(pages, max(1, runs // 2)))
    rows += [index.make_time(c, runs) for c in real]
    rows.append(startup.cat_start(made["tiny"], runs))
    print("diffing across history...", file=sys.stderr)
    rows += history.rows(pages, runs)
    if not args.no_peers:
        for name in peers.modules():
            print(f"running {name}...", file=sys.stderr)
            rows += peers.rows_of(name, book)
        # FUSE on many small files too: where walking costs most (find, ls -lR).
        rows += peers.rows_of("bench_fuse", pages)
    print(render(rows))
    context = {
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "runs": runs,
        "seconds": round(time.monotonic() - started, 1),
    }
    save(rows, RESULTS, context)
    print(f"\nwritten to {RESULTS} in {context['seconds']} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
