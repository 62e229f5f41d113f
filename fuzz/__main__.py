"""python -m fuzz: every hostile-input campaign at full size; exit status 1 if any found a problem.

python -m fuzz [--seed N] [--mutations 10000] [--updates 10000] [--jobs 2] [--frames 10000]
               [--connections 3000] [--ninep-cases 10000] [--http 10000] [--atheris-seconds 60]
               [--only images|updates|ninep|http|atheris]
python -m fuzz --case NUMBER [--kind indexed|plain|zstd|refs] [--seed N]
                                           # judge one mutation here and print every violation
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent / "tests"
sys.path.insert(0, str(TESTS))  # the harness lives in tests/hostile

from fuzz import atheris_runs, http_exchanges, images, ninep_frames, ninep_storm, updates  # noqa: E402

DEFAULT_SEED = 20261121


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m fuzz", description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--mutations", type=int, default=10_000, help="of each kind of image")
    parser.add_argument("--updates", type=int, default=10_000, help="mutated update files")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes judging images")
    parser.add_argument("--frames", type=int, default=10_000)
    parser.add_argument("--connections", type=int, default=3_000)
    parser.add_argument("--ninep-cases", type=int, default=10_000, help="malformed 9P frames, each judged")
    parser.add_argument("--http", type=int, default=10_000, help="cases of hostile HTTP answers, each judged")
    parser.add_argument("--atheris-seconds", type=int, default=60)
    parser.add_argument("--only", choices=["images", "updates", "ninep", "http", "atheris"])
    parser.add_argument("--case", type=int, help="reproduce one mutation of --seed")
    parser.add_argument("--kind", default="indexed", help="the kind of image --case mutates")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="docteur-fuzz-") as scratch:
        work = Path(scratch)
        if args.case is not None:
            return 0 if images.reproduce(work, seed=args.seed, number=args.case, kind=args.kind) else 1
        results = []
        if args.only in (None, "images"):
            results.append(images.run(work / "images", seed=args.seed, count=args.mutations, jobs=args.jobs))
        if args.only in (None, "updates"):
            results.append(updates.run(work / "updates", seed=args.seed, count=args.updates, jobs_=args.jobs))
        if args.only in (None, "ninep"):
            (work / "ninep").mkdir()
            results.append(
                ninep_storm.run(
                    work / "ninep", seed=args.seed, frames=args.frames, connections=args.connections
                )
            )
            (work / "ninep-frames").mkdir()
            results.append(ninep_frames.run(work / "ninep-frames", seed=args.seed, cases=args.ninep_cases))
        if args.only in (None, "http"):
            (work / "http").mkdir()
            results.append(http_exchanges.run(work / "http", seed=args.seed, count=args.http))
        if args.only in (None, "atheris"):
            results.append(atheris_runs.run(work / "atheris", seconds=args.atheris_seconds))
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
