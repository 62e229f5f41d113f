"""The honest base images, made once per session: the indexed zlib one, and one per other kind."""

from __future__ import annotations

from pathlib import Path

import pytest

from .corpus import KINDS, Base, build_base


@pytest.fixture(scope="session")
def base(tmp_path_factory: pytest.TempPathFactory) -> Base:
    return build_base(tmp_path_factory.mktemp("hostile-base"))


@pytest.fixture(scope="session", params=list(KINDS))
def kind_base(request: pytest.FixtureRequest, base: Base, tmp_path_factory: pytest.TempPathFactory) -> Base:
    """The base image of each kind in turn (the session's indexed one for "indexed")."""
    if request.param == "indexed":
        return base
    workdir: Path = tmp_path_factory.mktemp(f"hostile-base-{request.param}")
    return build_base(workdir, request.param)
