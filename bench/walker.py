"""python -m bench.walker IMAGE: walk an image, stat and read every file, as an application would (the
peak RSS figures measure this process)."""

from __future__ import annotations

import sys

import docteur


def read_everything(img: docteur.Image) -> int:
    """walk() + stat() + read() of every file; the bytes read."""
    total = 0
    for dirpath, _, files in img.walk():
        for name in files:
            path = f"{dirpath}/{name}" if dirpath else name
            img.stat(path)
            total += len(img.read(path))
    return total


if __name__ == "__main__":
    with docteur.open(sys.argv[1]) as image:
        read_everything(image)
