"""Load, briefly: 64 clients read random files from one docteur-serve at once; every byte is right.

bench/bench_load.py runs the same for 60 s in `make bench`.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ninep.sample import DATE, SAMPLE
from trees import write_tree

from docteur.make import make, parse_date

from .storm import serving

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # bench/ is beside tests/, not installed
from bench.bench_load import digests, load

CLIENTS = 64
SECONDS = 5.0


def test_64_clients_read_every_byte_right(tmp_path: Path) -> None:
    write_tree(tmp_path / "src", SAMPLE)
    make(str(tmp_path / "src"), tmp_path / "load.img", date=parse_date(DATE), quiet=True)
    with serving(tmp_path / "load.img", tmp_path / "9p.sock", tmp_path / "serve.log") as proc:
        result = load(str(tmp_path / "9p.sock"), digests(tmp_path / "src"), clients=CLIENTS, seconds=SECONDS)
        assert proc.poll() is None
    p50, p99 = result.percentile(50) * 1e3, result.percentile(99) * 1e3
    print(f"{result.reads} reads, p50 {p50:.1f} ms, p99 {p99:.1f} ms")
    assert not result.errors, result.errors[:5]
    assert result.reads > CLIENTS  # every client got through at least one file
    assert len(result.latencies) == result.reads
