"""The hostile HTTP campaign (issue 15): `count` cases, each one to three hostile answers (or every answer
hostile) from a server on 127.0.0.1, judged; counts printed."""

from __future__ import annotations

from pathlib import Path

from hostile import http_cases


def run(work: Path, *, seed: int, count: int) -> bool:
    corpus = http_cases.build_corpus(work)
    summary = http_cases.run(corpus, (http_cases.case(corpus, seed, n) for n in range(count)))
    print(f"http (seed {seed}): {summary.report()}")
    return not summary.failures
