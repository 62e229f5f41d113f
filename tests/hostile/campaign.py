"""Campaigns: the jobs for seeded mutations and forged cases, and the counts a run reports."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from . import forge, forge_index
from .corpus import Base
from .mutations import FAMILIES, RESEALED, Layout, git_accepts, mutate, renamed_refs_only
from .runner import Job, Outcome, run_jobs
from .section_mutations import same_contents


def mutations(original: bytes, seed: int, numbers: Iterable[int]) -> Iterator[tuple[str, bytes]]:
    layout = Layout.of(original)
    for n in numbers:
        what, data = mutate(original, layout, seed, n)
        yield f"mutation {seed}:{n} {what}", data


def truncations(original: bytes) -> Iterator[tuple[str, bytes]]:
    """The image cut at every section boundary, one byte short of it and one byte past it."""
    for i, boundary in enumerate(Layout.of(original).boundaries()):
        for at in sorted({max(boundary - 1, 0), boundary, boundary + 1}):
            if at < len(original):
                yield f"mutation boundary:{i} truncate_boundary: cut at {at}", original[:at]


def image_jobs(base: Base, cases: Iterable[tuple[str, bytes]], scratch: Path, ninep: bool) -> Iterator[Job]:
    """One job per (name, image bytes). docteur-verify must accept an image equal to the original, or to
    its part before the extension (an image made without a path index; not of a zstd image, whose files
    lie in the extension), or a re-sealed one that git accepts too (its objects unchanged), or one whose
    zstd frames decode to the same contents (same_contents), and reject every other."""
    original = base.image.read_bytes()
    layout = Layout.of(original)
    cut = layout.table is not None and base.kind != "zstd"
    plain = original[: layout.table.offset] if cut else original  # type: ignore[union-attr]
    scratch.mkdir(parents=True, exist_ok=True)
    valid, corrupt = scratch / "valid.json", scratch / "corrupt.json"
    base.expected.dump(valid)
    replace(base.expected, verify_ok=False, opens=False).dump(corrupt)
    for n, (name, data) in enumerate(cases):
        image = scratch / f"case-{n}.img"
        image.write_bytes(data)
        resealed = name.split()[2].rstrip(":") in RESEALED
        ok = (
            data in (original, plain)
            or (resealed and git_accepts(data, layout, scratch))
            or renamed_refs_only(data, original, layout)
            or same_contents(data, original, layout)
        )
        yield Job(name, str(image), str(valid if ok else corrupt), ninep)


def forged_jobs(names: Iterable[str], scratch: Path, ninep: bool, base: Base | None = None) -> Iterator[Job]:
    """One job per forged case: a PACK forged by hand (forge.py), or, given the honest `base`, its path
    index forged (forge_index.py)."""
    scratch.mkdir(parents=True, exist_ok=True)
    for name in names:
        image = scratch / f"{name}.img"
        expected = forge.build(name, image) if base is None else forge_index.build(base, name, image)
        expected.dump(scratch / f"{name}.json")
        yield Job(f"forged {name}", str(image), str(scratch / f"{name}.json"), ninep)


@dataclass
class Summary:
    cases: int = 0
    by_family: Counter[str] = field(default_factory=Counter)
    accepted_by_verify: int = 0
    rejected_by_verify: int = 0
    refused_reads: int = 0  # CorruptImageError / EIO answers
    correct_reads: int = 0
    max_seconds: float = 0.0
    maxrss_kb: int = 0
    failures: list[Outcome] = field(default_factory=list)

    def add(self, outcome: Outcome) -> None:
        self.cases += 1
        family = (
            outcome.job.name.split()[2].rstrip(":") if outcome.job.name.startswith("mutation") else "forged"
        )
        self.by_family[family] += 1
        self.accepted_by_verify += outcome.verified is True
        self.rejected_by_verify += outcome.verified is False
        self.refused_reads += outcome.rejected
        self.correct_reads += outcome.correct
        self.max_seconds = max(self.max_seconds, outcome.seconds)
        self.maxrss_kb = max(self.maxrss_kb, outcome.maxrss_kb)
        if outcome.violations:
            self.failures.append(outcome)
        if outcome.job.name.startswith("mutation"):
            Path(outcome.job.image).unlink(missing_ok=True)

    def report(self) -> str:
        known = [*FAMILIES, "forged"]
        names = known + sorted(set(self.by_family) - set(known))  # and the update campaign's families
        families = ", ".join(f"{name} {self.by_family[name]}" for name in names if self.by_family[name])
        lines = [
            f"{self.cases} cases ({families})",
            f"docteur-verify rejected {self.rejected_by_verify} images, accepted {self.accepted_by_verify}",
            f"{self.correct_reads} correct answers, {self.refused_reads} refusals (CorruptImageError / EIO)",
            f"slowest case {self.max_seconds:.2f} s, worker peak RSS {self.maxrss_kb // 1024} MiB",
            f"{len(self.failures)} cases with violations",
        ]
        for outcome in self.failures[:20]:
            lines.append(
                f"  {outcome.job.name}: {outcome.violations[0]}"
                + (f" (+{len(outcome.violations) - 1})" if len(outcome.violations) > 1 else "")
            )
        return "\n".join(lines)


def run(jobs: Iterable[Job], scratch: Path, *, workers: int = 1, timeout: float = 20.0) -> Summary:
    summary = Summary()
    for outcome in run_jobs(jobs, scratch / "workers", workers=workers, timeout=timeout):
        summary.add(outcome)
    return summary
