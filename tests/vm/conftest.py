"""The QEMU guest (unikernel/) for the real-client tests: built once per session, never skipped."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from ninep.sample import sample  # noqa: F401 - the shared sample image

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def guest_built() -> None:
    """`make -C unikernel` (a no-op when built): the guest kernel, initramfs and Python."""
    subprocess.run(["make", "-s", "-C", str(REPO / "unikernel")], check=True, timeout=1200)
