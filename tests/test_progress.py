"""Progress goes to stderr only when it is a terminal, and -q silences it."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

from trees import FILE, write_tree

MAKE = str(Path(sys.executable).parent / "docteur-make")


def _run_on_a_terminal(*args: str) -> tuple[int, bytes]:
    primary, secondary = pty.openpty()
    proc = subprocess.Popen(
        [MAKE, *args], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=secondary
    )
    os.close(secondary)
    seen = b""
    while True:
        try:
            chunk = os.read(primary, 4096)
        except OSError:  # EIO: the terminal's other side closed
            break
        if not chunk:
            break
        seen += chunk
    os.close(primary)
    return proc.wait(timeout=120), seen


def test_progress_on_a_terminal(tmp_path: Path) -> None:
    write_tree(tmp_path / "d", {b"f%03d" % i: (FILE, b"x" * i) for i in range(200)})
    rc, seen = _run_on_a_terminal(str(tmp_path / "d"), str(tmp_path / "o.img"))
    assert rc == 0
    assert b"reading files" in seen and b"writing image" in seen and b"done." in seen


def test_quiet_on_a_terminal(tmp_path: Path) -> None:
    write_tree(tmp_path / "d", {b"f": (FILE, b"x")})
    rc, seen = _run_on_a_terminal("-q", str(tmp_path / "d"), str(tmp_path / "o.img"))
    assert (rc, seen) == (0, b"")


def test_no_progress_when_stderr_is_not_a_terminal(tmp_path: Path) -> None:
    write_tree(tmp_path / "d", {b"f": (FILE, b"x")})
    out = subprocess.run(
        [MAKE, str(tmp_path / "d"), str(tmp_path / "o.img")], capture_output=True, check=True
    )
    assert out.stderr == b""
