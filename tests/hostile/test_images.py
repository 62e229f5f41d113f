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
from .mutations import Layout, families_of
from .runner import Outcome, run_jobs

SEED = 20261121
PER_FAMILY = 20  # mutations of each family that applies to a kind: 240 to 340 a kind
# The sections of each kind's image, which the section families aim at.
KIND_SECTIONS = {
    "indexed": {"paths", "refs"},
    "plain": set(),
    "zstd": {"paths", "refs", "dictionary", "blobs", "frames"},
    "refs": {"paths", "refs"},
}
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


def test_every_kind_has_the_sections_its_families_aim_at(kind_base: Base) -> None:
    original = kind_base.image.read_bytes()
    layout = Layout.of(original)
    sections = {s.name for s in layout.table.sections} if layout.table is not None else set()
    assert sections == KIND_SECTIONS[kind_base.kind]
    families = families_of(original, layout)
    assert ("delta_base" in families) == (kind_base.kind != "zstd")  # a zstd PACK holds no blob to delta
    assert verify(str(kind_base.image)).ok


def test_seeded_mutations(kind_base: Base, tmp_path: Path) -> None:
    original = kind_base.image.read_bytes()
    families = families_of(original, Layout.of(original))
    count = PER_FAMILY * len(families)
    cases = campaign.mutations(original, SEED, range(count))
    summary = campaign.run(campaign.image_jobs(kind_base, cases, tmp_path, True), tmp_path, timeout=TIMEOUT)
    print(summary.report())
    assert summary.cases == count
    assert set(summary.by_family) == set(families)
    assert not summary.failures, summary.report()
    assert summary.refused_reads > 0 and summary.correct_reads > 0


def test_truncation_at_every_boundary(kind_base: Base, tmp_path: Path) -> None:
    original = kind_base.image.read_bytes()
    cases = list(campaign.truncations(original))
    summary = campaign.run(campaign.image_jobs(kind_base, cases, tmp_path, False), tmp_path, timeout=TIMEOUT)
    assert summary.cases == len(cases) > 20
    # The cut at the extension's start leaves a valid image, one without a path index: except for a zstd
    # image, whose files lie in the extension. An image without an extension has no such cut.
    valid = 1 if kind_base.kind in ("indexed", "refs") else 0
    assert summary.rejected_by_verify == len(cases) - valid
    assert not summary.failures, summary.report()


# Cases the campaign found, each once a violation: (kind, case number, what the mutation did).
REGRESSIONS = [
    # feature's path index record gave /out another size than main's; reading /out through feature,
    # after main had read it, served it without checking that size.
    ("refs", 306, "paths section"),
    # The refs section's reserved field, re-sealed non-zero: docteur-verify accepted the image.
    ("zstd", 1138, "refs zero"),
    # A ref moved to the commit another ref names, re-sealed: the path index still indexed the commit
    # it had named, and docteur-verify accepted an index of a commit no ref names.
    ("refs", 1679, "refs commit #1"),
]


@pytest.mark.parametrize(("kind", "number", "what"), REGRESSIONS)
def test_a_case_the_campaign_found(
    kind_base: Base, tmp_path: Path, kind: str, number: int, what: str
) -> None:
    if kind_base.kind != kind:
        pytest.skip(f"a case of the {kind} kind")
    cases = list(campaign.mutations(kind_base.image.read_bytes(), SEED, [number]))
    assert what in cases[0][0]
    summary = campaign.run(campaign.image_jobs(kind_base, cases, tmp_path, False), tmp_path, timeout=TIMEOUT)
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
