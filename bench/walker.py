"""python -m bench.walker IMAGE: walk an image and read every file, as an application would (goal 4
measures this process's peak RSS)."""

from __future__ import annotations

import sys

import docteur


def read_everything(img: docteur.Image) -> int:
    """walk() + read() of every file; the bytes read."""
    total = 0
    for dirpath, _, files in img.walk():
        for name in files:
            total += len(img.read(f"{dirpath}/{name}" if dirpath else name))
    return total


if __name__ == "__main__":
    with docteur.open(sys.argv[1]) as image:
        read_everything(image)
