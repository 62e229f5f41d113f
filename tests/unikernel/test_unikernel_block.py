"""Block mode: the image is a read-only virtio disk, and docteur inside the guest reads a file from it."""

from __future__ import annotations

import os
import random
import subprocess
from pathlib import Path

import pytest
from conftest import SPEC

from unikernel import guest
from unikernel.paths import REPO

pytestmark = pytest.mark.usefixtures("guest_build")


@pytest.mark.parametrize(
    "path",
    [
        b"README.md",
        b"bytes.bin",
        b"big.bin",
        b"a/b/c/deep.txt",
        "données/été ☃.txt".encode(),
        b"latin-\xe9.txt",
    ],
    ids=["text", "binary", "over-1MB", "nested", "non-ASCII", "non-UTF-8"],
)
def test_prints_the_exact_bytes(image: Path, path: bytes) -> None:
    run = guest.run_block(image, "/" + os.fsdecode(path))
    assert (run.rc, run.stderr) == (0, b"")
    assert run.stdout == SPEC[path][1]


def test_empty_file(image: Path) -> None:
    assert tuple(guest.run_block(image, "empty")) == (0, b"")


@pytest.mark.parametrize(
    ("path", "error"),
    [
        ("/a/b/missing.txt", "docteur: /a/b/missing.txt: No such file or directory in the image"),
        ("/a/b", "docteur: /a/b: Is a directory"),
    ],
)
def test_bad_path_is_one_line_error(image: Path, path: str, error: str) -> None:
    run = guest.run_block(image, path)
    assert run.rc == 1
    assert run.stdout == b""
    assert run.stderr.decode() == error + "\n"


def test_corrupt_image_is_one_line_error(image: Path, tmp_path: Path) -> None:
    # The header and PACK survive; the IDX at the end is overwritten with noise.
    data = bytearray(image.read_bytes())
    data[-8192:] = random.Random(1).randbytes(8192)
    bad = tmp_path / "corrupt.img"
    bad.write_bytes(data)
    run = guest.run_block(bad, "README.md")
    assert run.rc == 1
    assert run.stdout == b""
    lines = run.stderr.decode().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("docteur: /dev/vda: ")


def test_not_an_image_is_one_line_error(tmp_path: Path) -> None:
    bad = tmp_path / "zeros.img"
    bad.write_bytes(bytes(4096))
    run = guest.run_block(bad, "README.md")
    assert run.rc == 1
    assert run.stderr.decode().count("\n") == 1
    assert run.stderr.startswith(b"docteur: /dev/vda: ")


def make_run(*args: str) -> subprocess.CompletedProcess[bytes]:
    # -s: with -C, make itself would print "Entering directory" on stdout.
    return subprocess.run(["make", "-s", "-C", str(REPO / "unikernel"), "run", *args], capture_output=True)


def test_make_run_prints_the_file(image: Path) -> None:
    proc = make_run(f"IMAGE={image}", "FILE=/big.bin")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == SPEC[b"big.bin"][1]
    assert b"accel=" in proc.stderr  # which accelerator was used is said


def test_make_run_missing_file_fails_with_one_line(image: Path) -> None:
    proc = make_run(f"IMAGE={image}", "FILE=/nope")
    assert proc.returncode != 0
    assert proc.stdout == b""
    assert b"docteur: /nope: No such file or directory in the image\n" in proc.stderr
    assert b"Traceback" not in proc.stderr


def test_make_run_missing_image_fails_before_booting(tmp_path: Path) -> None:
    proc = make_run(f"IMAGE={tmp_path / 'absent.img'}", "FILE=/x")
    assert proc.returncode != 0
    assert f"unikernel: {tmp_path / 'absent.img'}: no such image".encode() in proc.stderr
