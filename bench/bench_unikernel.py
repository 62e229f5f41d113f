"""Boot-to-output of the QEMU guest in block mode, and the size of what it boots.

Each boot is timed from QEMU's start to its exit, with the image of the tree attached as a read-only virtio
disk and docteur in the guest printing one small file of it. The best of a few boots is kept (the machine
is shared). TCG always; KVM too where the boot probe says it works here. A boot of the same guest that
stops before Python starts shows what the kernel alone costs.

    python -m bench.bench_unikernel [DIR]     # default: the generated "book" corpus
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from bench.table import Row
from docteur.make import make, parse_date
from unikernel import guest
from unikernel.paths import INITRAMFS

REPO = Path(__file__).resolve().parent.parent
RUNS = 3
GOAL_TCG = 4.0  # seconds, boot to output


def _smallest_file(tree: Path) -> str:
    files = [p for p in tree.rglob("*") if p.is_file() and not p.is_symlink() and ".git" not in p.parts]
    return "/" + str(min(files, key=lambda p: (p.stat().st_size, str(p))).relative_to(tree))


def _best(boot: Callable[[], guest.Run], runs: int) -> tuple[float, float]:
    """The best wall time and the best QEMU CPU time of RUNS boots."""
    walls, cpus = [], []
    for _ in range(runs):
        run = boot()
        if run.rc != 0:
            raise RuntimeError(f"the guest failed ({run.rc}): {run.error}")
        walls.append(run.seconds)
        cpus.append(run.cpu_seconds)
    return min(walls), min(cpus)


def rows(tree: Path, source: Path | None = None, name: str | None = None, runs: int = RUNS) -> list[Row]:
    """Rows for an image of `source` (default: `tree`), printing the smallest file of `tree`."""
    subprocess.run(["make", "-s", "-C", str(REPO / "unikernel")], check=True, capture_output=True)
    accel = guest.accelerator(announce=False)
    label = name or tree.name
    with tempfile.TemporaryDirectory(prefix="bench-unikernel-") as scratch:
        image = Path(scratch) / "tree.img"
        make(str(source or tree), image, date=parse_date("2020-10-10T08:00:00+00:00"), quiet=True)
        path = _smallest_file(tree)
        wall, cpu = _best(lambda: guest.run_block(image, path, accel="tcg"), runs)
        floor, floor_cpu = _best(lambda: guest.boot("probe", accel="tcg"), runs)
        out = [
            Row(f"guest boot to output, block mode, TCG ({label})", wall, limit=GOAL_TCG, relative=False),
            Row(
                f"guest boot to output, block mode, TCG, QEMU CPU time ({label})",
                cpu,
                note="about the wall time on an idle machine: other loads barely inflate it",
            ),
            Row(
                "guest boot to poweroff without Python, TCG",
                floor,
                note=f"the kernel and busybox alone ({floor_cpu:.2f} s of CPU): the floor under block mode",
            ),
        ]
        if accel == "kvm":
            kvm, _ = _best(lambda: guest.run_block(image, path, accel="kvm"), runs)
            out.append(Row(f"guest boot to output, block mode, KVM ({label})", kvm))
        else:
            out.append(
                Row("guest boot to output, KVM", None, note="the KVM boot probe fails on this machine")
            )
    out.append(Row("guest initramfs (zstd)", os.path.getsize(INITRAMFS) / 1e6, unit="MB"))
    return out


def main(argv: list[str]) -> None:
    from bench.corpora import generated, given
    from bench.table import render

    corpus = given(argv[0]) if argv else generated("book")
    print(render(rows(corpus.tree, corpus.repo, corpus.name)))


if __name__ == "__main__":
    main(sys.argv[1:])
