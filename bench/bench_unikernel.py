"""Boot-to-output of the QEMU guest in block and disk modes, reading everything in the guest, and the size
of what it boots.

Each boot is timed from QEMU's start to its exit, with the image of the tree attached as a read-only virtio
disk, and docteur in the guest printing one small file of it (block mode) or busybox `cat` printing it
from the guest's own 9P mount of the disk (disk mode). The best of a few boots is kept (the machine is
shared). TCG always; KVM too where the boot probe says it works here. A boot of the same guest that stops
before Python starts (kernel and busybox alone) is the peer of both. Inside one disk-mode boot, `cat` of
every file through the mount is timed against docteur's `read_all` of the disk in the same guest.

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
GOAL_BLOCK = 1.25  # boot to output vs the kernel and busybox alone
GOAL_DISK = 1.4
GOAL_CAT_ALL = 1.5  # disk mode's cat of every file vs block mode's read_all, in the guest
# In one disk-mode boot: read_all once to warm the disk's page cache for both, then each way timed once
# (cat's 9P mount is cache=loose, so a second cat would read the guest's page cache instead).
CAT_ALL = r"""up() { cut -d' ' -f1 /proc/uptime; }
read_all='import docteur
with docteur.open("/dev/vda") as img:
    for _ in img.read_all(): pass'
python3 -S -c "$read_all"
t0=$(up); find /mnt -type f -exec cat {} + >/dev/null; t1=$(up)
python3 -S -c "$read_all"; t2=$(up)
echo "$t0 $t1 $t2"
"""


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
        disk, disk_cpu = _best(lambda: guest.run_disk(image, f"cat '/mnt{path}'", accel="tcg"), runs)
        floor, floor_cpu = _best(lambda: guest.boot("probe", accel="tcg"), runs)
        alone = "kernel + busybox"
        cat_all, read_all = _cat_all(image)
        out = [
            Row(
                f"guest boot to output, block mode, TCG ({label})",
                wall,
                floor,
                peer_name=alone,
                limit=GOAL_BLOCK,
            ),
            Row(
                f"guest boot to output, block mode, TCG, QEMU CPU time ({label})",
                cpu,
                floor_cpu,
                peer_name=alone,
                note="about the wall time on an idle machine: other loads barely inflate it",
            ),
            Row(
                f"guest boot to output, disk mode (cat of its own 9P mount), TCG ({label})",
                disk,
                floor,
                peer_name=alone,
                limit=GOAL_DISK,
                note=f"{disk_cpu:.2f} s of QEMU CPU time",
            ),
            Row(
                f"guest: cat of every file through the disk-mode mount vs read_all of the disk ({label})",
                cat_all,
                read_all,
                peer_name="block read_all",
                limit=GOAL_CAT_ALL,
            ),
            Row(
                "guest boot to poweroff without Python, TCG",
                floor,
                note=f"the kernel and busybox alone ({floor_cpu:.2f} s of CPU): the floor under both modes",
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


def _cat_all(image: Path) -> tuple[float, float]:
    """Seconds for `cat` of every file through disk mode's mount, and for read_all of the disk."""
    run = guest.run_disk(image, CAT_ALL, accel="tcg", timeout=600)
    if run.rc != 0:
        raise RuntimeError(f"the guest failed ({run.rc}): {run.error}")
    t0, t1, t2 = map(float, run.stdout.split())
    return t1 - t0, t2 - t1


def main(argv: list[str]) -> None:
    from bench.corpora import generated, given
    from bench.table import render

    corpus = given(argv[0]) if argv else generated("book")
    print(render(rows(corpus.tree, corpus.repo, corpus.name)))


if __name__ == "__main__":
    main(sys.argv[1:])
