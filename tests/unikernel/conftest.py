"""The guest built once per session, and one test image whose source tree the tests compare against."""

from __future__ import annotations

import random
import subprocess
from pathlib import Path

import pytest
from trees import EXEC, FILE, LINK, Tree, read_fs_tree, write_tree

from docteur.make import make, parse_date
from unikernel.paths import REPO

SPEC: Tree = {
    b"README.md": (FILE, b"# docteur\n\nread from a QEMU guest\n"),
    b"empty": (FILE, b""),
    b"bytes.bin": (FILE, bytes(range(256)) * 3 + b"\r\n\x00\r"),
    # Over a megabyte, incompressible: several virtio and 9P transfers.
    b"big.bin": (FILE, random.Random(5).randbytes(1_300_000)),
    b"run.sh": (EXEC, b"#!/bin/sh\necho hi\n"),
    b"link": (LINK, b"README.md"),
    b"a/b/c/deep.txt": (FILE, b"nested three levels down\n"),
    "données/été ☃.txt".encode(): (FILE, "non-ASCII name, non-ASCII content: ☃\n".encode()),
    b"latin-\xe9.txt": (FILE, b"a name that is not UTF-8\n"),
}


@pytest.fixture(scope="session")
def guest_build() -> None:
    """`make -C unikernel`: idempotent, and quick when nothing changed."""
    proc = subprocess.run(["make", "-s", "-C", str(REPO / "unikernel")], capture_output=True, timeout=900)
    if proc.returncode != 0:
        pytest.fail(f"make -C unikernel failed:\n{proc.stderr.decode(errors='replace')}")


@pytest.fixture(scope="session")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("source")
    write_tree(root, SPEC)
    return root


@pytest.fixture(scope="session")
def source_tree(source: Path) -> Tree:
    return read_fs_tree(source)


@pytest.fixture(scope="session")
def image(source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("image") / "disk.img"
    make(str(source), out, date=parse_date("2020-01-01T00:00:00Z"), quiet=True)
    return out


@pytest.fixture(scope="session")
def zstd_image(source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same tree with its files' contents in zstd frames."""
    out = tmp_path_factory.mktemp("image") / "zstd.img"
    make(str(source), out, date=parse_date("2020-01-01T00:00:00Z"), quiet=True, compress="zstd")
    return out
