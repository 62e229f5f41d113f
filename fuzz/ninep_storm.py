"""The full 9P storm at a running docteur-serve with its default limits (fid exhaustion included)."""

from __future__ import annotations

import time
from pathlib import Path

from hostile.storm import serving, storm
from ninep.client import Client
from ninep.sample import DATE, SAMPLE
from trees import write_tree

from docteur.make import make, parse_date
from docteur.ninep.server import Limits

RSS_END_MIB = 256  # what may stay allocated after the storm (each of 262,144 fids costs ~0.5 KiB)


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
    if "Traceback" in log.read_text():
        problems.append(f"a traceback in {log}")
    print(f"9P storm (seed {seed}, {time.monotonic() - started:.0f} s): {report.summary()}")
    for problem in problems[:10]:
        print(f"  {problem}")
    return not problems
