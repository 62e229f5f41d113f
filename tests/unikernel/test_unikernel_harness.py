"""The boot harness's own checks, which answer before any guest boots."""

from __future__ import annotations

from pathlib import Path

import pytest

from unikernel import guest

pytestmark = pytest.mark.usefixtures("guest_build")


def test_accel_env_forces_the_accelerator(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ACCEL", "tcg")
    assert guest.accelerator() == "tcg"
    assert "accel=tcg (forced by ACCEL)" in capsys.readouterr().err


def test_unknown_accel_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACCEL", "hvf")
    with pytest.raises(guest.GuestError, match="ACCEL=hvf: expected one of kvm, tcg"):
        guest.accelerator()


def test_missing_image_is_refused(tmp_path: Path) -> None:
    with pytest.raises(guest.GuestError, match="no such image"):
        guest.run_block(tmp_path / "absent.img", "README.md", accel="tcg")


def test_overlong_argument_is_refused(image: Path) -> None:
    # The kernel command line holds 2048 bytes on x86: the harness says so instead of truncating.
    with pytest.raises(guest.GuestError, match="too long for the kernel command line"):
        guest.run_block(image, "/" + "d/" * 800 + "f", accel="tcg")
