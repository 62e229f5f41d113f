"""Corrupt and forged images: every read path answers right or raises CorruptImageError, within a time limit.

A scaled-down campaign (`make fuzz` runs the full one): a few hundred seeded mutations of a real image, the
image cut at every section boundary, and every forged case, each judged in a worker process by the API,
extract, docteur-verify and 9P probes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import docteur
from docteur.git.objects import MODE_LINK
from docteur.verify import verify

from . import campaign, forge, forge_index
from .corpus import COMMITS, Base
from .mutations import FAMILIES
from .runner import Outcome, run_jobs

SEED = 20261121
MUTATIONS = 240  # 20 per family
TIMEOUT = 20.0


def test_the_base_image_has_what_mutations_need(base: Base) -> None:
    nodes = base.expected.nodes
    assert base.deltas >= COMMITS  # history stored as deltas
    assert any(n.mode == MODE_LINK for n in nodes.values())
    assert max(p.count(b"/") for p in nodes) >= 3
    assert verify(str(base.image)).ok
    with docteur.open(base.image) as img:
        assert {p: img.read(p.decode()) for p, n in nodes.items() if n.content} == {
            p: n.content for p, n in nodes.items() if n.content
        }


def test_seeded_mutations(base: Base, tmp_path: Path) -> None:
    original = base.image.read_bytes()
    jobs = campaign.image_jobs(base, campaign.mutations(original, SEED, range(MUTATIONS)), tmp_path, True)
    summary = campaign.run(jobs, tmp_path, timeout=TIMEOUT)
    print(summary.report())
    assert summary.cases == MUTATIONS
    assert set(summary.by_family) == set(FAMILIES)
    assert not summary.failures, summary.report()
    assert summary.refused_reads > 0 and summary.correct_reads > 0


def test_truncation_at_every_boundary(base: Base, tmp_path: Path) -> None:
    original = base.image.read_bytes()
    cases = list(campaign.truncations(original))
    summary = campaign.run(campaign.image_jobs(base, cases, tmp_path, False), tmp_path, timeout=TIMEOUT)
    assert summary.cases == len(cases) > 30
    # One cut leaves a valid image: the one at the extension's start, an image without a path index.
    assert summary.rejected_by_verify == len(cases) - 1
    assert not summary.failures, summary.report()


@pytest.fixture(scope="module")
def forged(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    scratch = tmp_path_factory.mktemp("forged")
    jobs = campaign.forged_jobs(forge.CASES, scratch / "images", True)
    return {
        o.job.name.removeprefix("forged "): o for o in run_jobs(jobs, scratch / "workers", timeout=TIMEOUT)
    }


@pytest.mark.parametrize("name", list(forge.CASES))
def test_forged_image(forged: dict[str, Outcome], name: str) -> None:
    outcome = forged[name]
    assert not outcome.violations, "\n".join(outcome.violations)
    assert outcome.correct > 0 or name == "commit-not-a-commit"  # the honest files read back


@pytest.fixture(scope="module")
def forged_indexes(base: Base, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    scratch = tmp_path_factory.mktemp("forged-index")
    jobs = campaign.forged_jobs(forge_index.CASES, scratch / "images", True, base)
    return {
        o.job.name.removeprefix("forged "): o for o in run_jobs(jobs, scratch / "workers", timeout=TIMEOUT)
    }


@pytest.mark.parametrize("name", list(forge_index.CASES))
def test_forged_index(forged_indexes: dict[str, Outcome], name: str) -> None:
    """Every reader (the API, extract, 9P) answers right or refuses what a forged index says, and
    docteur-verify rejects the image."""
    outcome = forged_indexes[name]
    assert not outcome.violations, "\n".join(outcome.violations)
    assert outcome.verified is False
    if name in forge_index.UNOPENED:
        assert outcome.rejected > 0 and outcome.correct == 0  # open refused it
    elif name == "index-other-commit":
        assert outcome.rejected == 0 and outcome.correct > 0  # the trees parsed instead: all right
    else:
        assert outcome.rejected > 0 and outcome.correct > 0  # the forgery was met, and refused
