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


def umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def create_beside(target: Path, infix: str) -> tuple[int, str]:
    """A new, empty file beside `target`, named `.<name><infix><pid>-<random>.tmp` so that
    remove_abandoned(target's directory, f".{name}{infix}") finds it if this process is SIGKILLed:
    (descriptor, path)."""
    directory = target.parent if str(target.parent) else Path(".")
    tmp = str(directory / f"{tagged(f'.{target.name}{infix}')}{os.urandom(6).hex()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except OSError as e:
        raise OSError(e.errno, e.strerror, str(target)) from None
    return fd, tmp


def publish(tmp: str, target: Path) -> None:
    """Give a complete (fsynced) temporary file a new file's mode and rename it over `target`, then
    fsync the directory so that the rename itself is durable."""
    os.chmod(tmp, 0o666 & ~umask())
    os.replace(tmp, target)
    fd = os.open(target.parent if str(target.parent) else ".", os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
