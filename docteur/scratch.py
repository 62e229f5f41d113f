"""Scratch files and directories named after the process that made them, so that what a SIGKILLed run
left behind (it cannot clean up) is removed by the next run: a name whose process is gone is stale."""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def tagged(prefix: str) -> str:
    """A scratch name's start for this process: `prefix` and the pid, then a dash."""
    return f"{prefix}{os.getpid()}-"


def remove_abandoned(folder: Path, prefix: str) -> None:
    """Remove what processes now gone left in `folder` under names tagged(prefix) gave them. A pid reused
    by another process keeps its scratch, which is the safe side."""
    try:
        leftovers = list(folder.glob(f"{prefix}*-*"))
    except OSError:
        return
    for leftover in leftovers:
        pid = leftover.name[len(prefix) :].split("-", 1)[0]
        if not pid.isdigit() or alive(int(pid)):
            continue
        if leftover.is_dir() and not leftover.is_symlink():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True
