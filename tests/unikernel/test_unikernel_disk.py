"""Disk mode: the guest is given only the image, as its read-only virtio disk, and mounts it itself.

What every mount of /mnt must show (find, stat, readlink, sha256sum, refused writes) is checked for disk
mode beside mount mode in test_unikernel_9p.py; here, what is disk mode's own: another program than
Python reading through the mount, CMD's output and exit status passed through, and bad images.
"""

from __future__ import annotations

import random
import subprocess
from pathlib import Path

import pytest
from conftest import SPEC
from trees import DIR, LINK, Tree

from unikernel import guest
from unikernel.paths import REPO

pytestmark = pytest.mark.usefixtures("guest_build")


@pytest.mark.parametrize("kind", ["image", "zstd_image"])
def test_busybox_grep_reads_through_the_mount(
    kind: str, request: pytest.FixtureRequest, source_tree: Tree
) -> None:
    image = request.getfixturevalue(kind)
    run = guest.run_disk(image, "cd /mnt && grep -rl name . | sort; grep -c 'levels down' a/b/c/deep.txt")
    assert (run.rc, run.stderr) == (0, b"")
    files = {p: c for p, (mode, c) in source_tree.items() if mode not in (DIR, LINK)}
    named = sorted(b"./" + p for p, c in files.items() if b"name" in c)
    assert len(named) == 2
    assert run.stdout == b"".join(p + b"\n" for p in named) + b"1\n"


def test_output_and_exit_status_pass_through_byte_exact(image: Path) -> None:
    run = guest.run_disk(image, "cat /mnt/bytes.bin; printf 'err\\0\\r\\n' >&2; cat /mnt/empty; exit 7")
    assert run.rc == 7
    assert run.stdout == SPEC[b"bytes.bin"][1]
    assert run.stderr == b"err\0\r\n"


def test_a_missing_path_is_the_command_s_own_error(image: Path) -> None:
    run = guest.run_disk(image, "cat /mnt/a/nope")
    assert (run.rc, run.stdout) == (1, b"")
    assert run.stderr == b"cat: can't open '/mnt/a/nope': No such file or directory\n"


@pytest.mark.parametrize("damage", ["idx-noise", "zeros"])
def test_a_bad_image_is_one_line_and_the_command_never_runs(image: Path, tmp_path: Path, damage: str) -> None:
    data = bytearray(image.read_bytes())
    if damage == "idx-noise":  # the header and PACK survive; the IDX and the sections are noise
        data[-8192:] = random.Random(1).randbytes(8192)
    else:
        data = bytearray(len(data))
    bad = tmp_path / "bad.img"
    bad.write_bytes(data)
    run = guest.run_disk(bad, "echo ran")
    assert (run.rc, run.stdout) == (125, b"")
    lines = run.stderr.decode().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("docteur: /dev/vda: ")


def make_disk(*args: str) -> subprocess.CompletedProcess[bytes]:
    # -s: with -C, make itself would print "Entering directory" on stdout.
    return subprocess.run(["make", "-s", "-C", str(REPO / "unikernel"), "disk", *args], capture_output=True)


def test_make_disk_runs_the_command(image: Path, source_tree: Tree) -> None:
    proc = make_disk(f"IMAGE={image}", "CMD=cat /mnt/big.bin; ls /mnt/nope")
    assert proc.returncode != 0  # ls's status
    assert proc.stdout == source_tree[b"big.bin"][1]
    assert b"ls: /mnt/nope: No such file or directory\n" in proc.stderr
    assert b"Traceback" not in proc.stderr


def test_make_disk_without_an_image_fails_before_booting(tmp_path: Path) -> None:
    proc = make_disk(f"IMAGE={tmp_path / 'absent.img'}", "CMD=true")
    assert proc.returncode != 0
    assert proc.stderr.startswith(f"unikernel: {tmp_path / 'absent.img'}: no such image\n".encode())


def test_make_disk_needs_a_command(image: Path) -> None:
    proc = make_disk(f"IMAGE={image}")
    assert proc.returncode != 0
    assert b"disk needs CMD=" in proc.stderr
