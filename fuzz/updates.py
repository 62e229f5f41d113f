"""The update campaign (issue 12): seeded mutations of an honest update and every forged one, each applied
by `docteur patch` in a worker; counts printed."""

from __future__ import annotations

import hashlib
import itertools
import time
from pathlib import Path

from hostile import campaign
from hostile.update_cases import build_pair, forged, jobs, mutations


def run(work: Path, *, seed: int, count: int, jobs_: int) -> bool:
    started = time.monotonic()
    pair = build_pair(work / "pair")
    old = hashlib.sha256(pair.old.read_bytes()).digest()
    cases = itertools.chain(mutations(pair.update.read_bytes(), seed, range(count)), forged(pair))
    summary = campaign.run(jobs(pair, cases, work / "cases"), work, workers=jobs_)
    untouched = hashlib.sha256(pair.old.read_bytes()).digest() == old
    print(f"updates (seed {seed}, {time.monotonic() - started:.0f} s): {summary.report()}")
    print(f"OLD untouched by every case: {'yes' if untouched else 'NO'}")
    return not summary.failures and untouched
