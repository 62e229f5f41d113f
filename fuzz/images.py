"""The full image campaign: for each image kind, seeded mutations and a cut at every boundary; every forged
case (PACKs and path indexes); counts printed."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

from hostile import campaign, forge, forge_index
from hostile.corpus import KINDS, Base, Expected, build_base
from hostile.ninep_probe import probe_9p
from hostile.oracle import probe


def run(work: Path, *, seed: int, count: int, jobs: int) -> bool:
    """`count` mutations of each kind of image (corpus.KINDS)."""
    ok = True
    for kind in KINDS:
        started = time.monotonic()
        base = build_base(work / kind / "base", kind)
        original = base.image.read_bytes()
        cases = itertools.chain(
            campaign.mutations(original, seed, range(count)), campaign.truncations(original)
        )
        jobs_ = campaign.image_jobs(base, cases, work / kind / "mutations", True)
        if kind == "indexed":  # the forged cases need no other kind's base
            jobs_ = itertools.chain(
                jobs_,
                campaign.forged_jobs(forge.CASES, work / "forged", True),
                campaign.forged_jobs(forge_index.CASES, work / "forged-index", True, base),
            )
        summary = campaign.run(jobs_, work / kind, workers=jobs)
        print(f"images, {kind} (seed {seed}, {time.monotonic() - started:.0f} s): {summary.report()}")
        ok = ok and not summary.failures
    return ok


def reproduce(work: Path, *, seed: int, number: int, kind: str) -> bool:
    """Case `number` of campaign `seed` on the `kind` image, judged in this process, every violation
    printed."""
    base: Base = build_base(work / "base", kind)
    name, data = next(campaign.mutations(base.image.read_bytes(), seed, [number]))
    job = next(campaign.image_jobs(base, [(name, data)], work / "one", False))
    expected = Expected.load(Path(job.expected))
    verdict = probe(Path(job.image), expected, work)
    probe_9p(Path(job.image), expected, work, verdict)
    print(f"{name}: {verdict.correct} correct, {verdict.rejected} refused, verify ok={verdict.verified}")
    for violation in verdict.violations:
        print(f"  {violation}")
    return not verdict.violations
