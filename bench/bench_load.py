"""Load: many 9P clients reading random files from one docteur-serve at once; every byte is checked.

Each client has its own connection (9P2000.L) and reads whole files (walk, open, reads, clunk) chosen at
random, for a fixed time; the figure is the latency of one whole-file read. Clients are threads spread over
a few processes, so the load generator's own GIL does not set the latencies.

    python -m bench.bench_load [DIR] [--clients 64] [--seconds 60]    # default: the generated book corpus
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))  # the 9P client the tests use (tests/ninep/client.py)
from ninep.client import Client  # noqa: E402

PROCESSES = 4
_LOCK = threading.Lock()  # the clients of one process add to one result
DATE = "2020-10-10T08:00:00+00:00"


@dataclass
class LoadResult:
    clients: int
    seconds: float
    reads: int = 0
    bytes: int = 0
    errors: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)  # seconds per whole-file read

    def percentile(self, p: int) -> float:
        return (
            statistics.quantiles(self.latencies, n=100, method="inclusive")[p - 1] if self.latencies else 0.0
        )


def digests(tree: Path) -> dict[bytes, tuple[int, str]]:
    """Path (relative, bytes) -> (size, sha256) of every regular file below `tree`."""
    found: dict[bytes, tuple[int, str]] = {}
    base = os.fsencode(tree)
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = [d for d in dirnames if d != b".git"]
        for name in filenames:
            full = os.path.join(dirpath, name)
            if os.path.isfile(full) and not os.path.islink(full):
                data = Path(os.fsdecode(full)).read_bytes()
                found[os.path.relpath(full, base)] = (len(data), hashlib.sha256(data).hexdigest())
    return found


def _client(
    address: str, files: dict[bytes, tuple[int, str]], seed: int, until: float, out: LoadResult
) -> None:
    rng = random.Random(seed)
    paths = sorted(files)
    latencies, errors, reads, size = [], [], 0, 0
    try:
        with Client(address, timeout=60) as client:
            client.version("9P2000.L", 1 << 17)
            client.attach()
            while time.monotonic() < until:
                path = rng.choice(paths)
                start = time.perf_counter()
                data = client.read(path)
                latencies.append(time.perf_counter() - start)
                if (len(data), hashlib.sha256(data).hexdigest()) != files[path]:
                    errors.append(f"{path.decode(errors='replace')}: wrong bytes")
                reads += 1
                size += len(data)
    except Exception as e:
        errors.append(f"client {seed}: {type(e).__name__}: {e}")
    with _LOCK:
        out.latencies += latencies
        out.errors += errors
        out.reads += reads
        out.bytes += size


def _process(address: str, files: dict[bytes, tuple[int, str]], seeds: list[int], until: float) -> LoadResult:
    out = LoadResult(len(seeds), 0.0)
    threads = [threading.Thread(target=_client, args=(address, files, s, until, out)) for s in seeds]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def load(address: str, files: dict[bytes, tuple[int, str]], *, clients: int, seconds: float) -> LoadResult:
    """`clients` concurrent clients of the server at `address` (a unix socket) for `seconds`."""
    result = LoadResult(clients, seconds)
    processes = min(PROCESSES, clients)
    groups = [list(range(i, clients, processes)) for i in range(processes)]
    until = time.monotonic() + seconds
    with ProcessPoolExecutor(processes) as pool:
        for part in pool.map(
            _process, [address] * processes, [files] * processes, groups, [until] * processes
        ):
            result.latencies += part.latencies
            result.errors += part.errors
            result.reads += part.reads
            result.bytes += part.bytes
    return result


def rows(tree: Path, clients: int = 64, seconds: float = 60.0) -> list[dict[str, object]]:
    """Serve an image of `tree` with docteur-serve and measure it under load (the bench's module API)."""
    from docteur.make import make, parse_date

    files = digests(tree)
    with tempfile.TemporaryDirectory(prefix="bench-load-") as work:
        image, sock = Path(work) / "load.img", Path(work) / "9p.sock"
        make(str(tree), image, date=parse_date(DATE), quiet=True)
        serve = Path(sys.executable).parent / "docteur-serve"
        with open(Path(work) / "serve.log", "wb") as log:
            proc = subprocess.Popen([str(serve), str(image), "--listen", f"unix:{sock}"], stderr=log)
        try:
            while not sock.exists():
                if proc.poll() is not None:
                    raise RuntimeError((Path(work) / "serve.log").read_text())
                time.sleep(0.02)
            result = load(str(sock), files, clients=clients, seconds=seconds)
        finally:
            proc.terminate()
            proc.wait(10)
    label = f"9P load, {clients} clients for {seconds:g} s"
    return [
        {"figure": f"{label}: whole-file reads", "ours": result.reads / seconds, "unit": "/s", "limit": None},
        {"figure": f"{label}: p50 read latency", "ours": result.percentile(50) * 1e3, "unit": "ms"},
        {"figure": f"{label}: p99 read latency", "ours": result.percentile(99) * 1e3, "unit": "ms"},
        {
            "figure": f"{label}: errors or wrong bytes",
            "ours": float(len(result.errors)),
            "unit": "",
            "limit": 0,
            "relative": False,
            "note": "; ".join(result.errors[:3]),
        },
    ]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_load", description=__doc__.splitlines()[0])
    parser.add_argument("tree", nargs="?", help="a directory (default: the generated book corpus)")
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args(argv)
    if args.tree is None:
        from bench.corpora import generated

        tree = generated("book").tree
    else:
        tree = Path(args.tree)
    for row in rows(tree, args.clients, args.seconds):
        print(f"{row['figure']}: {row['ours']:.6g} {row['unit']}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
