"""Writers of images killed at random points: the target holds the old file, nothing, or the complete new
one, and what the SIGKILL left behind (it cannot clean up) is removed by the next run, beside the target
and in the temporary directory alike."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from trees import FILE, write_tree

from docteur.make import make, parse_date

BIN = Path(sys.executable).parent
KILLS = 8
SEED = 15
DATE = "2020-10-10T08:00:00+00:00"
OLD = b"the old image"


@dataclass(frozen=True)
class Inputs:
    source: Path  # a directory
    plain: Path  # its image without a path index
    old: Path  # an image of `source`, and `new` of source changed, and the update from the one to the other
    new: Path
    update: Path


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Inputs:
    """A tree big enough that writing its image takes a while, its images and an update between two."""
    root = tmp_path_factory.mktemp("writers")
    rng = random.Random(SEED)
    files = {
        b"d%02d/f%04d.txt" % (i % 40, i): (FILE, rng.randbytes(64).hex().encode() * 8) for i in range(6000)
    }
    write_tree(root / "src", files)
    changed = {p: (FILE, rng.randbytes(64).hex().encode() * 8) for p in list(files)[::7]}
    write_tree(root / "src2", {**files, **changed, b"new/file.txt": (FILE, b"added\n")})
    when = parse_date(DATE)
    make(str(root / "src"), root / "plain.img", date=when, quiet=True, index=False)
    make(str(root / "src"), root / "old.img", date=when, quiet=True)
    make(str(root / "src2"), root / "new.img", date=when, quiet=True, base=root / "old.img")
    update = root / "old-to-new.update"
    subprocess.run(
        [BIN / "docteur", "delta", root / "old.img", root / "new.img", "-o", update, "-q"], check=True
    )
    return Inputs(root / "src", root / "plain.img", root / "old.img", root / "new.img", update)


Command = Callable[[Inputs, Path], list[str | Path]]
WRITERS: dict[str, Command] = {
    "make": lambda i, target: [BIN / "docteur-make", i.source, target, "-q", "-d", DATE],
    "reindex": lambda i, target: [BIN / "docteur", "reindex", i.plain, "-o", target],
    "convert": lambda i, target: [BIN / "docteur", "convert", i.plain, target, "--compress", "zstd", "-q"],
    "delta": lambda i, target: [BIN / "docteur", "delta", i.old, i.new, "-o", target, "-q"],
    "patch": lambda i, target: [BIN / "docteur", "patch", i.old, i.update, "-o", target],
    # OLD patched into NEW where it lies: the target starts as OLD.
    "patch in place": lambda i, target: [BIN / "docteur", "patch", target, i.update, "-o", target],
}
IN_PLACE = {"patch in place"}


def _start(command: list[str | Path], env: dict[str, str]) -> subprocess.Popen[bytes]:
    # Its own session, so that a kill reaches the git processes a writer runs too.
    return subprocess.Popen(command, env=env, stderr=subprocess.PIPE, start_new_session=True)


def _scratch(target: Path, tmpdir: Path) -> bool:
    """Whether a writer's scratch lies beside `target` or in `tmpdir`."""
    return any(p.name != target.name for p in target.parent.iterdir()) or any(tmpdir.iterdir())


def _until_scratch(proc: subprocess.Popen[bytes], target: Path, tmpdir: Path) -> None:
    while proc.poll() is None and not _scratch(target, tmpdir):
        time.sleep(0.001)


def _run(command: list[str | Path], env: dict[str, str]) -> None:
    done = subprocess.run(command, env=env, stderr=subprocess.PIPE)
    assert done.returncode == 0, done.stderr.decode()


@pytest.mark.parametrize("writer", list(WRITERS))
def test_sigkill_leaves_the_old_file_nothing_or_the_new_one(
    inputs: Inputs, tmp_path: Path, writer: str
) -> None:
    command = WRITERS[writer]
    scratch = tmp_path / "tmp"  # the writers' TMPDIR, which must be empty once a run has ended
    scratch.mkdir()
    env = {**os.environ, "TMPDIR": str(scratch)}
    in_place = writer in IN_PLACE
    timed = tmp_path / "timed" / "disk.img"
    timed.parent.mkdir()
    if in_place:
        shutil.copyfile(inputs.old, timed)
    started = time.monotonic()
    proc = _start(command(inputs, timed), env)
    _until_scratch(proc, timed, scratch)
    writing = time.monotonic()
    _, err = proc.communicate()
    assert proc.returncode == 0, err.decode()
    took, writing = time.monotonic() - started, time.monotonic() - writing
    new = timed.read_bytes()
    if writer.startswith("patch"):
        assert new == inputs.new.read_bytes()  # what the update was made from, bit for bit
    old = inputs.old.read_bytes() if in_place else OLD
    rng = random.Random(f"{SEED}:{writer}")
    seen: set[str] = set()
    for i in range(KILLS):
        target = tmp_path / f"out{i}" / "disk.img"
        target.parent.mkdir()
        had_old = in_place or rng.random() < 0.5
        if had_old:
            target.write_bytes(old)
        proc = _start(command(inputs, target), env)
        if i % 2:  # at any time; else once its scratch is there, while it writes
            time.sleep(rng.uniform(0, took * 1.2))
        else:
            _until_scratch(proc, target, scratch)
            time.sleep(rng.uniform(0, writing))
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        now = target.read_bytes() if target.exists() else None
        state = "new" if now == new else "old" if had_old and now == old else "absent"
        assert now is None or state != "absent", f"kill #{i}: the target is torn"
        assert state != "absent" or not had_old, f"kill #{i}: the old image is gone"
        seen.add(state)
        if _scratch(target, scratch):
            seen.add("scratch")
        if in_place and state == "new":  # no next run: the update does not apply to NEW
            assert not _scratch(target, scratch), f"kill #{i}: scratch left after the rename"
            continue
        # The next run removes what the killed one left beside the target and in TMPDIR, and writes the image.
        _run(command(inputs, target), env)
        assert target.read_bytes() == new
        assert sorted(p.name for p in target.parent.iterdir()) == ["disk.img"]
        assert sorted(p.name for p in scratch.iterdir()) == [], f"kill #{i}: scratch left in TMPDIR"
    assert seen - {"new"}, "every kill came too late to test anything"
    assert "scratch" in seen, "no kill left scratch for the next run to remove"
    print(writer, f"{took:.2f} s, writing {writing:.2f} s", sorted(seen))
