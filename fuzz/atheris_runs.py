"""Run the atheris targets for a while each, from seeds: small real and forged images, valid 9P frames."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from hostile import forge
from hostile.corpus import build_base

from docteur.ninep import wire

HERE = Path(__file__).resolve().parent
SEED_IMAGE_BYTES = 20_000  # larger seeds slow every run (the fuzzer mutates whole inputs)


def _image_seeds(work: Path) -> Path:
    seeds = work / "image-seeds"
    seeds.mkdir(parents=True)
    (seeds / "base.img").write_bytes(build_base(work / "base").image.read_bytes())
    for name in forge.CASES:
        forge.build(name, work / f"{name}.img")
        if (work / f"{name}.img").stat().st_size <= SEED_IMAGE_BYTES:
            (work / f"{name}.img").rename(seeds / f"{name}.img")
    return seeds


def _frame_seeds(work: Path) -> Path:
    """One frame of every message type of every dialect, its fields zero or empty."""
    seeds = work / "frame-seeds"
    seeds.mkdir(parents=True)
    blank = {"b": 0, "w": 0, "d": 0, "q": 0, "s": b"", "D": b"", "W": [b"x"], "R": [], "Q": wire.Qid(0, 0, 0)}
    stat = wire.Stat(0, 0, wire.Qid(0, 0, 0), 0, 0, 0, 0, b"", b"", b"", b"")
    for dialect, layouts in wire.LAYOUTS.items():
        for kind, fields in layouts.items():
            args = {name: stat if code == "S" else blank[code] for name, code in fields}
            frame = wire.encode(wire.Message(kind, 1, **args), dialect)
            (seeds / f"{dialect.name}-{kind.name}").write_bytes(frame)
    return seeds


def run(work: Path, *, seconds: int) -> bool:
    ok = True
    for target, seeds, max_len in (
        ("atheris_image.py", _image_seeds(work), 65536),
        ("atheris_ninep.py", _frame_seeds(work), 4096),
    ):
        done = subprocess.run(
            [
                sys.executable,
                str(HERE / target),
                str(seeds),
                f"-max_total_time={seconds}",
                "-timeout=20",
                f"-max_len={max_len}",
                f"-artifact_prefix={work}/",
            ],
            capture_output=True,
            text=True,
        )
        runs = re.findall(r"Done (\d+) runs", done.stderr)
        print(f"atheris {target}: {runs[0] if runs else '?'} runs in {seconds} s, exit {done.returncode}")
        if done.returncode != 0:
            print("\n".join(done.stderr.splitlines()[-30:]))
            ok = False
    return ok
