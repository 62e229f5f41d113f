"""The full campaign of malformed 9P frames, each judged on its own connection, at a running docteur-serve."""

from __future__ import annotations

import time
from pathlib import Path

from hostile import ninep_frames
from ninep.sample import DATE, SAMPLE
from trees import write_tree

from docteur.make import make, parse_date

RSS_GROWTH_MIB = 64  # what 16 hostile connections at a time may add, bulk replies and fids included


def run(work: Path, *, seed: int, cases: int) -> bool:
    started = time.monotonic()
    write_tree(work / "src", SAMPLE)
    make(str(work / "src"), work / "sample.img", date=parse_date(DATE), quiet=True)
    result = ninep_frames.run(work / "sample.img", work, SAMPLE, seed=seed, count=cases)
    problems = result.problems(RSS_GROWTH_MIB)
    print(f"9P frames (seed {seed}, {time.monotonic() - started:.0f} s): {result.summary()}")
    for problem in problems[:10]:
        print(f"  {problem}")
    return not problems
