"""The honest base image, made once per session."""

from __future__ import annotations

import pytest

from .corpus import Base, build_base


@pytest.fixture(scope="session")
def base(tmp_path_factory: pytest.TempPathFactory) -> Base:
    return build_base(tmp_path_factory.mktemp("hostile-base"))
