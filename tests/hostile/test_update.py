"""Hostile update files (issue 12): seeded mutations of an honest update and forged ones, each applied by
`docteur patch` in a worker with time and memory limits. Never a crash, never a wrong image renamed
into place, never a file left beside the target; the honest update applies. `make fuzz` runs 10,000."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from . import campaign
from .update_cases import FAMILIES, Pair, build_pair, forged, jobs, mutations

SEED = 20261212
MUTATIONS = 160  # 20 per family
TIMEOUT = 20.0


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Pair:
    return build_pair(tmp_path_factory.mktemp("update-pair"))


def test_the_pair_exercises_every_operation(pair: Pair) -> None:
    from .update_cases import split

    header, body = split(pair.update.read_bytes())
    assert 0 < header.copied_entries < header.objects
    for tag in (b"\x01", b"\x02", b"\x04"):  # COPY, RAW, DELTA (somewhere in the body)
        assert tag in body


def test_seeded_mutations_of_an_update(pair: Pair, tmp_path: Path) -> None:
    old = hashlib.sha256(pair.old.read_bytes()).digest()
    cases = mutations(pair.update.read_bytes(), SEED, range(MUTATIONS))
    summary = campaign.run(jobs(pair, cases, tmp_path / "cases"), tmp_path, timeout=TIMEOUT)
    print(summary.report())
    assert summary.cases == MUTATIONS and set(summary.by_family) == set(FAMILIES)
    assert not summary.failures, summary.report()
    assert summary.refused_reads > 0
    assert hashlib.sha256(pair.old.read_bytes()).digest() == old  # OLD is only ever read


def test_forged_updates(pair: Pair, tmp_path: Path) -> None:
    summary = campaign.run(jobs(pair, forged(pair), tmp_path / "forged"), tmp_path, timeout=TIMEOUT)
    print(summary.report())
    assert not summary.failures, summary.report()
    # The honest update applies; every forgery is refused.
    assert summary.correct_reads == 1 and summary.refused_reads == summary.cases - 1
