"""Hostile HTTP exchanges (issue 15): cases that read an image over HTTP from HostileServer, whose plan gives
one to three of a case's requests (or every one) a hostile answer, each judged.

A case reads a range of the image through HttpSource, or (three cases in ten) opens the image over HTTP
and reads a file. The answer must be the right bytes or one docteur.DocteurError with a one-line message,
within the time the hostile answers may cost (no hang), the process's memory bounded. "The right bytes"
are the image's, up to the size the server claimed at first contact: a server may lie about the size
then, consistently, and no transport can tell (the image's own checks can: an image case then fails to
open). Answers whose body is wrong under right headers (BODY_FAULTS) only go to image cases for the
same reason.
"""

from __future__ import annotations

import queue
import random
import resource
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from trees import FILE, write_tree

import docteur
from docteur.bytesource.http import HttpSource
from docteur.bytesource.transport import MIN_RATE
from docteur.errors import DocteurError
from docteur.make import make, parse_date

from .http_server import BODY_FAULTS, FAULTS, HostileServer, Plan

BLOCK = 4096
REQUEST_BYTES = 4 * BLOCK
TIMEOUT = 0.25
RETRIES = 1
OPTIONS = {
    "cache_dir": None,
    "timeout": TIMEOUT,
    "retries": RETRIES,
    "backoff": 0.01,
    "block_size": BLOCK,
    "request_bytes": REQUEST_BYTES,
    "memory_bytes": 64 * BLOCK,
    "parallel": 2,
    "netrc": False,
}
# What one hostile answer may cost at the most: an attempt's deadline (a body must arrive at MIN_RATE),
# and the pause before the next, which a Retry-After of the server's (1 s at the most here) may lengthen.
PER_HOSTILE = TIMEOUT + REQUEST_BYTES / MIN_RATE + 1.2
SLACK = 1.5  # what the honest exchanges of a case take on a loaded machine
HANG = 60.0  # a case still running after this is a hang: the campaign stops
MAX_RSS_MB = 256
IMAGE_SHARE = 0.3
DATE = "2020-10-10T08:00:00+00:00"


@dataclass(frozen=True)
class Corpus:
    data: bytes  # the image
    files: dict[str, bytes]  # what it holds, from the tree it was made of


def build_corpus(workdir: Path, seed: int = 15) -> Corpus:
    """An image of a few dozen files, small and large (up to 40 KiB: several blocks), its path index in."""
    rng = random.Random(seed)
    spec = {f"d{i % 3}/f{i:02}.bin".encode(): (FILE, rng.randbytes(rng.randrange(40_000))) for i in range(30)}
    spec[b"README"] = (FILE, b"an image served by a hostile server\n")
    write_tree(workdir / "tree", spec)
    image = workdir / "image.img"
    make(str(workdir / "tree"), image, date=parse_date(DATE), quiet=True)
    return Corpus(image.read_bytes(), {p.decode(): c for p, (_, c) in spec.items()})


@dataclass(frozen=True)
class Case:
    number: int
    plan: Plan
    image: bool  # open the image and read `path`, else read [offset, offset + length) through HttpSource
    path: str = ""
    offset: int = 0
    length: int = 0

    @property
    def name(self) -> str:
        faults = dict(sorted(self.plan.faults.items()))
        plan = f"every request {self.plan.always}" if self.plan.always else f"requests {faults}"
        what = f"read {self.path}" if self.image else f"read {self.offset}+{self.length}"
        return f"http {self.plan.seed} {what}, {plan}"


def case(corpus: Corpus, seed: int, number: int) -> Case:
    rng = random.Random(f"{seed}:{number}")
    image = rng.random() < IMAGE_SHARE
    names = sorted(FAULTS if image else set(FAULTS) - BODY_FAULTS)
    plan = Plan(seed=f"{seed}:{number}")
    if rng.random() < 0.1:
        plan.always = rng.choice(names)
    else:
        # The contact (request 0) most often, being where a lie would be believed.
        for i in rng.sample(range(6), rng.choice([1, 1, 2, 3])):
            plan.faults[i] = rng.choice(names)
    if image:
        return Case(number, plan, True, path=rng.choice(sorted(corpus.files)))
    size = len(corpus.data)
    offset = rng.choice([0, rng.randrange(size), size - rng.randrange(1, 2 * BLOCK)])
    return Case(number, plan, False, offset=offset, length=rng.choice([1, 100, BLOCK, 3 * BLOCK + 7]))


@dataclass
class Result:
    case: Case
    refused: bool = False  # a DocteurError
    violation: str = ""
    seconds: float = 0.0

    @property
    def hostile(self) -> int:
        return sum(got != "honest" for got in self.case.plan.got)


def judge(server: HostileServer, corpus: Corpus, c: Case) -> Result:
    result = Result(c)
    server.plans[c.number] = c.plan
    started = time.monotonic()
    try:
        with HttpSource(server.url(c.number), **OPTIONS) as src:  # type: ignore[arg-type]
            if c.image:
                with docteur.open(src) as img:
                    got, want = img.read(c.path), corpus.files[c.path]
            else:
                got = bytes(src.read(c.offset, c.length))
                want = corpus.data[: src.size][c.offset : c.offset + c.length]
        if got != want:
            differ = sum(a != b for a, b in zip(got, want, strict=False))
            result.violation = f"wrong bytes: {len(got)} bytes (of {len(want)}), {differ} of them differ"
    except DocteurError as e:
        result.refused = True
        if not str(e) or "\n" in str(e):
            result.violation = f"{type(e).__name__} without a one-line message: {str(e)!r}"
    except Exception as e:  # anything else escaping is what the campaign looks for
        result.violation = f"{type(e).__name__}: {str(e)[:200]}"
    finally:
        del server.plans[c.number]
    result.seconds = time.monotonic() - started
    allowed = SLACK + result.hostile * PER_HOSTILE
    if not result.violation and result.seconds > allowed:
        result.violation = f"took {result.seconds:.1f} s, more than the {allowed:.1f} s its answers may cost"
    return result


@dataclass
class Summary:
    cases: int = 0
    exchanges: int = 0
    hostile: Counter[str] = field(default_factory=Counter)
    correct: int = 0
    refused: int = 0
    slowest: float = 0.0
    seconds: float = 0.0
    maxrss_mb: int = 0
    failures: list[Result] = field(default_factory=list)

    def add(self, r: Result) -> None:
        self.cases += 1
        self.exchanges += len(r.case.plan.got)
        self.hostile.update(got for got in r.case.plan.got if got != "honest")
        self.correct += not r.refused and not r.violation
        self.refused += r.refused
        self.slowest = max(self.slowest, r.seconds)
        if r.violation:
            self.failures.append(r)

    def report(self) -> str:
        faults = ", ".join(f"{name} {n}" for name, n in sorted(self.hostile.items()))
        hostile = sum(self.hostile.values())
        lines = [
            f"{self.cases} cases, {self.exchanges} exchanges, {hostile} hostile ({faults})",
            f"{self.correct} right answers, {self.refused} refusals (DocteurError)",
            f"slowest case {self.slowest:.2f} s, {self.seconds:.0f} s in all, peak RSS {self.maxrss_mb} MiB",
            f"{len(self.failures)} cases with violations",
        ]
        lines += [f"  {r.case.name}: {r.violation}" for r in self.failures[:20]]
        return "\n".join(lines)


def run(corpus: Corpus, cases: Iterable[Case], *, threads: int = 8) -> Summary:
    """Judge `cases`, `threads` at a time (most of a hostile case is waiting), against one server."""
    summary = Summary()
    started = time.monotonic()
    todo: queue.Queue[Case | None] = queue.Queue()
    done: queue.Queue[Result] = queue.Queue()
    running: dict[int, tuple[Case, float]] = {}
    pending = 0
    with HostileServer(corpus.data) as server:

        def worker() -> None:
            while (c := todo.get()) is not None:
                running[c.number] = (c, time.monotonic())
                r = judge(server, corpus, c)
                del running[c.number]
                done.put(r)

        # Daemons: a case that hangs must not keep the process from ending.
        workers = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
        for w in workers:
            w.start()
        for c in cases:
            todo.put(c)
            pending += 1
        for _ in workers:
            todo.put(None)
        while pending:
            try:
                summary.add(done.get(timeout=1.0))
                pending -= 1
            except queue.Empty:
                hung = [(c, t) for c, t in list(running.values()) if time.monotonic() - t > HANG]
                if hung:
                    for c, _ in hung:
                        summary.failures.append(
                            Result(c, violation=f"hangs: still running after {HANG:.0f} s")
                        )
                    break
    summary.seconds = time.monotonic() - started
    summary.maxrss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    if summary.maxrss_mb > MAX_RSS_MB:
        summary.failures.append(
            Result(Case(-1, Plan(), False), violation=f"peak RSS {summary.maxrss_mb} MiB")
        )
    return summary
