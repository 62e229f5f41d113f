"""The full 9P storm at a running docteur-serve with its default limits (fid exhaustion included)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from hostile.storm import exhaust_fids, rss_kb, serving, storm
from ninep.client import Client
from ninep.sample import DATE, SAMPLE
from trees import write_tree

from docteur.make import make, parse_date
from docteur.ninep.server import Limits

RSS_END_MIB = 256  # what may stay allocated after the storm (524,288 fids at most, ~250 bytes each)


@dataclass
class Held:
    granted: list[int]
    rss_kb: int  # the server's growth while they were held


def _held_fids(address: str, pid: int, connections: int = 3) -> Held:
    """Fids exhausted on several connections at once: together they meet the server-wide limit."""
    before = rss_kb(pid)
    clients = [Client(address, timeout=60) for _ in range(connections)]
    try:
        for client in clients:
            client.version("9P2000.L")
            client.attach()
        granted = [exhaust_fids(client, Limits.max_fids + 50) for client in clients]
        return Held(granted, rss_kb(pid) - before)
    finally:
        for client in clients:
            client.close()


def run(work: Path, *, seed: int, frames: int, connections: int) -> bool:
    started = time.monotonic()
    write_tree(work / "src", SAMPLE)
    make(str(work / "src"), work / "sample.img", date=parse_date(DATE), quiet=True)
    sock, log = work / "9p.sock", work / "serve.log"
    with serving(work / "sample.img", sock, log) as proc:
        report = storm(
            str(sock),
            proc.pid,
            SAMPLE,
            seed=seed,
            frames=frames,
            connections=connections,
            max_fids=Limits.max_fids,
            big=b"big.bin",
        )
        held = _held_fids(str(sock), proc.pid)
        alive = proc.poll() is None
        with Client(str(sock), timeout=10) as after:
            after.version("9P2000.L")
            after.attach()
            answers = after.read("README.md") == SAMPLE[b"README.md"][1]
    problems = [*report.good_errors]
    if not (alive and answers):
        problems.append("the server stopped answering")
    if report.rss_end_kb - report.rss_start_kb > RSS_END_MIB << 10:
        problems.append(f"RSS grew by more than {RSS_END_MIB} MiB")
    if sum(held.granted) + len(held.granted) != Limits.max_total_fids or held.rss_kb > RSS_END_MIB << 10:
        problems.append(f"fids held on {len(held.granted)} connections: {held}")
    if "Traceback" in log.read_text():
        problems.append(f"a traceback in {log}")
    print(f"9P storm (seed {seed}, {time.monotonic() - started:.0f} s): {report.summary()}")
    print(
        f"fids held on {len(held.granted)} connections at once: {held.granted}, RSS +{held.rss_kb >> 10} MiB"
    )
    for problem in problems[:10]:
        print(f"  {problem}")
    return not problems
