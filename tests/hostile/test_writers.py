"""Writers of images killed at random points: the target holds the old file, nothing, or the complete new
one, and what the SIGKILL left behind (it cannot clean up) is removed by the next run."""

from __future__ import annotations

import random
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from trees import FILE, write_tree

from docteur.make import make, parse_date

BIN = Path(sys.executable).parent
KILLS = 8
SEED = 15


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    """An image without a path index, big enough that reindexing it takes a while, and what reindex
    makes of it."""
    root = tmp_path_factory.mktemp("writers")
    rng = random.Random(SEED)
    write_tree(
        root / "src",
        {b"d%02d/f%04d.txt" % (i % 40, i): (FILE, rng.randbytes(64).hex().encode() * 8) for i in range(6000)},
    )
    image = root / "plain.img"
    make(str(root / "src"), image, date=parse_date("2020-10-10T08:00:00+00:00"), quiet=True, index=False)
    subprocess.run([BIN / "docteur", "reindex", image, "-o", root / "indexed.img"], check=True)
    return image, (root / "indexed.img").read_bytes()


WRITERS: dict[str, Callable[[Path, Path], list[str | Path]]] = {
    "reindex": lambda image, target: [BIN / "docteur", "reindex", image, "-o", target],
}


@pytest.mark.parametrize("writer", list(WRITERS))
def test_sigkill_leaves_the_old_file_nothing_or_the_new_one(
    plain: tuple[Path, bytes], tmp_path: Path, writer: str
) -> None:
    image, new = plain
    command = WRITERS[writer]
    started = time.monotonic()
    subprocess.run(command(image, tmp_path / "timed.img"), check=True)
    took = time.monotonic() - started
    rng = random.Random(f"{SEED}:{writer}")
    seen: set[str] = set()
    for i in range(KILLS):
        target = tmp_path / f"out{i}" / "disk.img"
        target.parent.mkdir()
        had_old = rng.random() < 0.5
        if had_old:
            target.write_bytes(b"the old image")
        proc = subprocess.Popen(command(image, target), stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0, took * 1.2))
        proc.kill()
        proc.wait()
        now = target.read_bytes() if target.exists() else None
        state = "new" if now == new else "old" if had_old and now == b"the old image" else "absent"
        assert now is None or state != "absent", f"kill #{i}: the target is torn"
        assert state != "absent" or not had_old, f"kill #{i}: the old image is gone"
        seen.add(state)
        # The next run removes what the killed one left beside the target, and writes the image.
        assert subprocess.run(command(image, target)).returncode == 0
        assert target.read_bytes() == new
        assert sorted(p.name for p in target.parent.iterdir()) == ["disk.img"]
    assert seen - {"new"}, "every kill came too late to test anything"
