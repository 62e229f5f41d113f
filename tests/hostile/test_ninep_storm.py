"""A running docteur-serve under hostile 9P traffic stays up, stays small and keeps answering right.

The scaled-down storm and frame campaign of `make fuzz`: some thousand malformed or hostile frames and
hundreds of connections, then a few hundred malformed frames judged one by one, while a well-behaved client
on its own connection checks every answer it gets.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from ninep.client import Client
from ninep.conftest import SPEC, running
from ninep.memfs import MemFS
from ninep.sample import DATE, SAMPLE
from trees import write_tree

from docteur.make import make, parse_date
from docteur.ninep.server import Limits

from . import ninep_frames
from .storm import exhaust_fids, serving, storm

SEED = 9
FRAMES = 1500
CONNECTIONS = 300
MAX_FIDS = 500
RSS_GROWTH_MIB = 64  # bulk replies are bounded per connection; fids by --max-fids
FRAME_CASES = 360  # 30 per family; `make fuzz` judges 10,000


@pytest.fixture(scope="module")
def sample_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("storm")
    write_tree(root / "src", SAMPLE)
    make(str(root / "src"), root / "sample.img", date=parse_date(DATE), quiet=True)
    return root / "sample.img"


def test_the_server_survives_a_storm(sample_image: Path, tmp_path: Path) -> None:
    sock, log = tmp_path / "9p.sock", tmp_path / "serve.log"
    with serving(sample_image, sock, log, "--max-fids", str(MAX_FIDS)) as proc:
        report = storm(
            str(sock),
            proc.pid,
            SAMPLE,
            seed=SEED,
            frames=FRAMES,
            connections=CONNECTIONS,
            max_fids=MAX_FIDS,
            big=b"big.bin",
            fid_exhaustions=2,
        )
        print(report.summary())
        assert proc.poll() is None, "the server died"
        with Client(str(sock), timeout=10) as after:  # a new session, after it all
            after.version("9P2000.L")
            after.attach()
            assert after.read("README.md") == SAMPLE[b"README.md"][1]
    assert report.frames >= FRAMES and report.connections >= CONNECTIONS
    assert report.attacks["fid_exhaustion"] == 2 and len(report.attacks) >= 10
    assert not report.good_errors, report.good_errors
    assert report.good_ops > 100
    assert report.rss_peak_kb - report.rss_start_kb < RSS_GROWTH_MIB << 10, report.summary()
    text = log.read_text()
    assert "Traceback" not in text and "Task exception" not in text, text[-2000:]


def test_each_malformed_frame_gets_an_answer_or_a_closed_connection(
    sample_image: Path, tmp_path: Path
) -> None:
    run = ninep_frames.run(sample_image, tmp_path, SAMPLE, seed=SEED, count=FRAME_CASES)
    print(run.summary())
    assert not run.problems(RSS_GROWTH_MIB), run.problems(RSS_GROWTH_MIB)
    report = run.report
    assert report.cases == FRAME_CASES and len(report.families) == len(ninep_frames.FAMILIES)
    # Both ends are reached: frames answered (with errors, mostly), and frames that close the connection.
    assert report.verdicts["answered"] > 50 and report.verdicts["closed"] > 50 and report.error_replies > 50
    assert run.good_ops > 10


def test_many_connections_cannot_multiply_the_fids_one_may_hold(tmp_path: Path) -> None:
    limits = Limits(max_fids=100, max_total_fids=250)
    with running(MemFS(SPEC), tmp_path / "9p.sock", limits=limits) as served:
        clients = [served.client() for _ in range(4)]  # each holds its root fid
        held = [exhaust_fids(c, 1 << 16) for c in clients]
        assert max(held) == limits.max_fids - 1  # the limit per connection still holds
        assert sum(held) + len(clients) == limits.max_total_fids and held[-1] == 0
        clients[0].close()  # its fids go back to the server once it sees the hang-up
        deadline = time.monotonic() + 10
        while len(served.server.connections) == len(clients) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert exhaust_fids(clients[-1], 1 << 16) == limits.max_fids - 1  # it had none; now a full share
        for c in clients[1:]:
            c.close()
