"""Hostile HTTP exchanges (issue 15): a sample of the campaign `make fuzz` runs at 10,000 cases. Every
case reads the right bytes or raises one DocteurError, in the time its hostile answers may cost, with
bounded memory; and the CLI, given a hostile server, says one line and exits 1."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from . import http_cases
from .http_cases import Corpus, build_corpus, case
from .http_server import FAULTS, HostileServer, Plan

SEED = 20261202
CASES = 500
# Cases the campaign found, each once a violation (see the commits that fixed them): (seed, number).
REGRESSIONS = [
    (1, 3),  # a Content-Range of 60,000 digits: ValueError from int()
    (1, 82),  # a garbage status line, CR LF and all, in the error message
    (1, 205),  # a redirect to "//[::1": ValueError from urljoin
    (1, 201),  # a chunk size that lied: the wrong bytes served
    (1, 196),  # headers dripped a byte at a time: a reader held for as long as the server liked
]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    return build_corpus(tmp_path_factory.mktemp("http-corpus"))


def test_a_sample_of_hostile_exchanges(corpus: Corpus) -> None:
    summary = http_cases.run(corpus, (case(corpus, SEED, n) for n in range(CASES)))
    print(summary.report())
    assert summary.cases == CASES
    assert not summary.failures, summary.report()
    assert set(summary.hostile) == set(FAULTS)  # every fault was met
    assert summary.correct > CASES // 2 and summary.refused > CASES // 10


def test_the_cases_the_campaign_found(corpus: Corpus) -> None:
    cases = [case(corpus, seed, n) for seed, n in REGRESSIONS]
    summary = http_cases.run(corpus, cases)
    assert not summary.failures, summary.report()


# Faults the CLI gives up on at once or after its retries (some 4 s of backoff): not those it waits out.
@pytest.mark.parametrize("fault", ["whole", "redirect", "status-line"])
def test_the_cli_says_one_line_and_exits_1(corpus: Corpus, fault: str) -> None:
    with HostileServer(corpus.data) as server:
        server.plans[0] = Plan(always=fault, seed=f"cli:{fault}")
        done = subprocess.run(
            [Path(sys.executable).parent / "docteur", "cat", server.url(0), "README", "--no-cache"],
            capture_output=True,
            timeout=60,
        )
    lines = done.stderr.decode(errors="replace").splitlines()
    assert (done.returncode, len(lines)) == (1, 1), done.stderr
    assert lines[0].startswith("docteur") and server.url(0) in lines[0]
