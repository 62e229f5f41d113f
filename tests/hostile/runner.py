"""Judge cases in worker processes: a time limit per case, a memory limit per worker, results as JSON lines.

A worker that overruns its case's time is killed (the case counts as a hang) and replaced. The parent
sends one job per line on the worker's stdin; run as `python -m hostile.runner SCRATCH` with tests/ on
the path.
"""

from __future__ import annotations

import json
import os
import resource
import selectors
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .oracle import Verdict

TESTS = Path(__file__).resolve().parent.parent
MEMORY_LIMIT = 3 << 30  # address space of a worker: a runaway allocation fails instead of swapping


@dataclass(frozen=True)
class Job:
    name: str  # enough to reproduce the case
    image: str
    expected: str  # an Expected, as JSON (for an update case, what update_probe expects)
    ninep: bool = True
    kind: str = "image"  # or "update": `image` is then an update file, judged by update_probe


@dataclass
class Outcome:
    job: Job
    violations: list[str] = field(default_factory=list)
    rejected: int = 0
    correct: int = 0
    verified: bool | None = None
    seconds: float = 0.0
    maxrss_kb: int = 0


class _Worker:
    def __init__(self, scratch: Path) -> None:
        scratch.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")])),
        }
        with open(scratch / "stderr.log", "ab") as log:  # the server's error lines, for a post-mortem
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "hostile.runner", str(scratch)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                env=env,
                cwd=TESTS,
            )
        self.job: Job | None = None
        self.deadline = 0.0

    def send(self, job: Job, timeout: float) -> None:
        assert self.proc.stdin is not None
        self.job, self.deadline = job, time.monotonic() + timeout
        self.proc.stdin.write(json.dumps(asdict(job)).encode() + b"\n")
        self.proc.stdin.flush()

    def receive(self) -> Outcome:
        assert self.proc.stdout is not None and self.job is not None
        line = self.proc.stdout.readline()
        job, self.job = self.job, None
        if not line:
            return Outcome(job, [f"worker died (exit {self.proc.wait()})"])
        raw = json.loads(line)
        return Outcome(job, **{k: v for k, v in raw.items() if k != "job"})

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()


def run_jobs(
    jobs: Iterable[Job], scratch: Path, *, workers: int = 1, timeout: float = 20.0
) -> Iterator[Outcome]:
    """Outcomes as the jobs finish (not in order)."""
    pending = iter(jobs)
    sel = selectors.DefaultSelector()
    pool = [_Worker(scratch / f"w{i}") for i in range(workers)]
    try:
        for w in pool:
            sel.register(w.proc.stdout, selectors.EVENT_READ, w)  # type: ignore[arg-type]
        idle = list(pool)
        busy: list[_Worker] = []
        while True:
            while idle and (job := next(pending, None)) is not None:
                w = idle.pop()
                w.send(job, timeout)
                busy.append(w)
            if not busy:
                return
            wait = max(0.0, min(w.deadline for w in busy) - time.monotonic())
            for key, _ in sel.select(wait):
                w = key.data
                busy.remove(w)
                idle.append(w)
                yield w.receive()
            now = time.monotonic()
            for w in [w for w in busy if w.deadline < now]:
                job = w.job
                assert job is not None
                busy.remove(w)
                sel.unregister(w.proc.stdout)  # type: ignore[arg-type]
                w.kill()
                fresh = _Worker(Path(scratch / f"w{pool.index(w)}"))
                pool[pool.index(w)] = fresh
                sel.register(fresh.proc.stdout, selectors.EVENT_READ, fresh)  # type: ignore[arg-type]
                idle.append(fresh)
                yield Outcome(job, [f"no answer within {timeout:.0f} s (hang)"])
    finally:
        for w in pool:
            w.kill()


def _serve(scratch: Path) -> None:
    from .corpus import Expected
    from .ninep_probe import probe_9p
    from .oracle import Verdict, probe
    from .update_probe import judge

    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    expectations: dict[str, Expected] = {}
    for line in sys.stdin:
        job = Job(**json.loads(line))
        if job.kind == "update":
            start = time.monotonic()
            try:
                verdict = judge(Path(job.image), Path(job.expected), scratch)
            except Exception as e:
                verdict = Verdict()
                verdict.bad(f"harness: {type(e).__name__}: {e}")
            _answer(verdict, start)
            continue
        expected = expectations.get(job.expected)
        if expected is None:
            expected = expectations[job.expected] = Expected.load(Path(job.expected))
        start = time.monotonic()
        verdict = Verdict()
        try:
            verdict = probe(Path(job.image), expected, scratch)
            if job.ninep:
                probe_9p(Path(job.image), expected, scratch, verdict)
        except Exception as e:  # a probe that breaks is reported like any violation, not a dead worker
            verdict.bad(f"harness: {type(e).__name__}: {e}")
        _answer(verdict, start)


def _answer(verdict: Verdict, start: float) -> None:
    result = {
        "violations": verdict.violations,
        "rejected": verdict.rejected,
        "correct": verdict.correct,
        "verified": verdict.verified,
        "seconds": time.monotonic() - start,
        "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    _serve(Path(sys.argv[1]))
