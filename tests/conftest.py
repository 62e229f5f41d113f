"""Fixtures shared by the tests: a fixed date, image makers and the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest

from docteur.make import make, parse_date

DATE = "2020-10-10T08:00:00+00:00"
BIN = Path(sys.executable).parent


@pytest.fixture
def date() -> datetime:
    return parse_date(DATE)


@pytest.fixture
def make_image(tmp_path: Path, date: datetime) -> Callable[..., Path]:
    """make(source) into a fresh image path under tmp_path, quietly, at the fixed date."""
    counter = iter(range(1_000_000))

    def run(source: str | Path, **kw: object) -> Path:
        out = tmp_path / f"image-{next(counter)}.img"
        kw.setdefault("date", date)
        make(str(source), out, quiet=True, **kw)  # type: ignore[arg-type]
        return out

    return run


def run_cli(
    *args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    """Run a console script of this venv (docteur, docteur-make, ...) and capture its output."""
    name, *rest = args
    return subprocess.run(
        [str(BIN / str(name)), *map(str, rest)],
        capture_output=True,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        timeout=300,
    )


@pytest.fixture
def cli() -> Callable[..., subprocess.CompletedProcess[bytes]]:
    return run_cli
