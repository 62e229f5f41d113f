"""Timing and memory measurement: min of several runs, interleaved so that ours and the peer see the same
load (the machine is shared and noisy)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

Command = Sequence[str | os.PathLike[str]]


def run(cmd: Command, stdin: Path | None = None) -> None:
    """Run `cmd` with its output discarded; raise with its stderr when it fails."""
    with open(stdin or os.devnull, "rb") as inp:
        done = subprocess.run(
            [os.fspath(c) for c in cmd], stdin=inp, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
    if done.returncode:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed: {done.stderr.decode(errors='replace')[-500:]}")


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def interleaved(actions: Mapping[str, Callable[[], object]], runs: int) -> dict[str, float]:
    """The best wall time of each action over `runs` rounds, the actions alternating within a round."""
    best = dict.fromkeys(actions, float("inf"))
    for _ in range(runs):
        for name, action in actions.items():
            best[name] = min(best[name], timed(action))
    return best


def peak_rss_mb(cmd: Command, stdin: Path | None = None, runs: int = 1) -> float:
    """Peak RSS of `cmd` in MB, measured by GNU time: a small C parent, so that the figure is the
    command's own (a child forked from this Python process would inherit its high-water mark)."""
    gnu_time = shutil.which("time", path="/usr/bin:/bin") or "/usr/bin/time"
    peaks = []
    for _ in range(runs):
        with open(stdin or os.devnull, "rb") as inp:
            done = subprocess.run(
                [gnu_time, "-f", "%M", *[os.fspath(c) for c in cmd]],
                stdin=inp,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                check=True,
            )
        peaks.append(int(done.stderr.decode().strip().splitlines()[-1]) / 1024)
    return min(peaks)
