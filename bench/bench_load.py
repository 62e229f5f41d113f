"""Load: many 9P clients reading random files from one docteur-serve at once; every byte is checked.

Each client has its own connection (9P2000.L) and reads whole files (walk, open, reads, clunk) chosen at
random, for a fixed time; the figure is the latency of one whole-file read. Clients are threads spread over
a few processes, so the load generator's own GIL does not set the latencies. The same load runs again with
64 idle sessions beside it, the two alternating in slices; a newcomer is timed among 64 idle or dribbling
connections (crowds.py); and the server's peak memory is taken while the clients read the large corpus.

    python -m bench.bench_load [DIR] [--clients 64] [--seconds 60]    # default: the generated book corpus
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))  # the 9P client and server harness of the tests
from hostile.storm import serving  # noqa: E402
from ninep.client import Client  # noqa: E402

from bench import crowds  # noqa: E402

PROCESSES = 4
CROWD = 64  # idle or dribbling connections beside the clients
LARGE_SECONDS = 20.0
TURNS = 4  # the runs alone and with idle sessions beside them alternate, in this many slices each
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

    def add(self, part: LoadResult) -> None:
        self.latencies += part.latencies
        self.errors += part.errors
        self.reads += part.reads
        self.bytes += part.bytes

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
            result.add(part)
    return result


def _peak_rss_mib(pid: int) -> float:
    """The process's peak resident set so far (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _crowded(image: Path, work: Path, path: bytes) -> dict[str, list[float | None]]:
    """A newcomer timed (three times) while 64 connections sit idle after Tversion, then while 64 dribble a
    frame a byte a second, at a server with its default limits (64 connections)."""
    sock = work / "crowd.sock"
    found: dict[str, list[float | None]] = {}
    with serving(image, sock, work / "crowd.log"):
        with crowds.idle(str(sock), CROWD, attached=False):
            found["idle"] = [crowds.newcomer(str(sock), path) for _ in range(3)]
        with crowds.dribbling(str(sock), CROWD):
            time.sleep(3)  # well into their frames, short of the frame deadline
            found["dribbling"] = [crowds.newcomer(str(sock), path) for _ in range(3)]
    return found


def _newcomer_row(what: str, times: list[float | None]) -> dict[str, object]:
    served = [t for t in times if t is not None]
    return {
        "figure": f"9P: a new client served while {CROWD} connections {what} (worst of {len(times)})",
        "ours": max(served) if len(served) == len(times) else None,
        "unit": "s",
        "limit": 1,
        "relative": False,
        "note": "" if len(served) == len(times) else f"refused {len(times) - len(served)} of {len(times)}",
    }


def rows(tree: Path, clients: int = 64, seconds: float = 60.0) -> list[dict[str, object]]:
    """Serve an image of `tree` with docteur-serve and measure it under load (the bench's module API):
    alone, then with idle sessions beside the clients; a newcomer among idle and dribbling connections;
    the server's memory while clients read large files."""
    from bench.corpora import generated
    from docteur.make import make, parse_date

    files = digests(tree)
    large = generated("large").tree
    large_files = digests(large)
    with tempfile.TemporaryDirectory(prefix="bench-load-") as scratch:
        work = Path(scratch)
        image, sock, large_image = work / "load.img", work / "9p.sock", work / "large.img"
        make(str(tree), image, date=parse_date(DATE), quiet=True)
        make(str(large), large_image, date=parse_date(DATE), quiet=True)
        # Room for both crowds: the idle sessions sit beside the clients rather than make room for them.
        with serving(image, sock, work / "serve.log", "--max-connections", str(clients + CROWD)):
            # In turns, so that both see the same load from the rest of the (shared) machine.
            alone, beside, kept = LoadResult(clients, seconds), LoadResult(clients, seconds), CROWD
            for _ in range(TURNS):
                alone.add(load(str(sock), files, clients=clients, seconds=seconds / TURNS))
                with crowds.idle(str(sock), CROWD, attached=True) as sessions:
                    beside.add(load(str(sock), files, clients=clients, seconds=seconds / TURNS))
                    kept = min(kept, crowds.still_open(sessions))
        crowded = _crowded(image, work, min(files, key=lambda p: files[p][0]))
        with serving(large_image, work / "large.sock", work / "large.log") as proc:
            heavy = load(str(work / "large.sock"), large_files, clients=clients, seconds=LARGE_SECONDS)
            peak = _peak_rss_mib(proc.pid)
    label = f"9P load, {clients} clients for {seconds:g} s"
    crowd = f"{label}, {CROWD} idle sessions beside them"
    large_mb = sum(size for size, _ in large_files.values()) / 1e6
    return [
        {"figure": f"{label}: whole-file reads", "ours": alone.reads / seconds, "unit": "/s", "limit": None},
        {"figure": f"{label}: p50 read latency", "ours": alone.percentile(50) * 1e3, "unit": "ms"},
        {"figure": f"{label}: p99 read latency", "ours": alone.percentile(99) * 1e3, "unit": "ms"},
        _errors_row(f"{label}: errors or wrong bytes", alone),
        _errors_row(f"{crowd}: errors or wrong bytes", beside),
        {
            "figure": f"{crowd}: p99 read latency",
            "ours": beside.percentile(99) * 1e3,
            "peer": alone.percentile(99) * 1e3,
            "peer_name": "without them",
            "unit": "ms",
            "limit": 1.2,
            "note": f"{kept} of {CROWD} idle sessions still served after",
        },
        _newcomer_row("sit idle after Tversion", crowded["idle"]),
        _newcomer_row("dribble a frame at 1 byte/s", crowded["dribbling"]),
        {
            "figure": f"9P: server peak RSS, {clients} clients reading large files ({large_mb:.0f} MB) "
            f"for {LARGE_SECONDS:g} s",
            "ours": peak,
            "unit": "MiB",
            "limit": 256,
            "relative": False,
            "note": f"{heavy.reads} whole-file reads, {len(heavy.errors)} errors",
        },
    ]


def _errors_row(figure: str, result: LoadResult) -> dict[str, object]:
    return {
        "figure": figure,
        "ours": float(len(result.errors)),
        "unit": "",
        "limit": 0,
        "relative": False,
        "note": "; ".join(result.errors[:3]),
    }


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
        ours = row["ours"]
        shown = "—" if ours is None else f"{ours:.6g} {row['unit']}"
        print(f"{row['figure']}: {shown}{'  (' + str(row['note']) + ')' if row.get('note') else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
