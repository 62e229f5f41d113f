"""A sample tree with every kind of entry, on disk and as an image, shared by the 9P tests (in-process
and through the guest kernel)."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from pathlib import Path

import pytest
from trees import EXEC, FILE, LINK, Tree, write_tree

from docteur.make import make, parse_date

DATE = "2020-01-01T00:00:00Z"
COMMIT_TIME = 1577836800


def _sample() -> Tree:
    rng = random.Random(4)
    tree: Tree = {
        b"README.md": (FILE, b"# sample\n"),
        b"docs/same.md": (FILE, b"# sample\n"),  # the same blob at two paths
        b"docs/guide/intro.txt": (FILE, b"intro\n" * 100),
        b"docs/up": (LINK, b"../README.md"),
        b"bin/run.sh": (EXEC, b"#!/bin/sh\necho run\n"),
        b"link": (LINK, b"README.md"),
        b"dangling": (LINK, b"nowhere/at/all"),
        b"empty": (FILE, b""),
        b"big.bin": (FILE, rng.randbytes(1_500_000)),  # more than the largest msize
        b"caf\xe9.txt": (FILE, b"not UTF-8\n"),
        b"with space/and more.txt": (FILE, b"spaces\n"),
    }
    for i in range(300):
        tree[b"many/entry-%03d-%s" % (i, b"x" * (i % 50))] = (FILE, b"%d\n" % i)
    return tree


SAMPLE = _sample()


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


@dataclass(frozen=True)
class Sample:
    source: Path
    image: Path
    tree: Tree


@pytest.fixture(scope="session")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Sample:
    root = tmp_path_factory.mktemp("sample")
    write_tree(root / "src", SAMPLE)
    make(str(root / "src"), root / "sample.img", date=parse_date(DATE), quiet=True)
    return Sample(root / "src", root / "sample.img", SAMPLE)
