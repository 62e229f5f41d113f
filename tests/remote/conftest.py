"""Real docteur images for the remote tests, and nginx serving them on 127.0.0.1."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from trees import FILE, write_tree

from docteur.make import make, parse_date
from remote.loopback import Nginx, served_copy

DATE = "2020-10-10T08:00:00+00:00"


def make_image(where: Path, seed: int, files: int = 60, size: int = 24_000) -> Path:
    """An image of `files` files of random, incompressible bytes (so that it spans many blocks)."""
    rng = random.Random(seed)
    spec = {
        f"d{i % 4}/f{i:03}.bin".encode(): (FILE, rng.randbytes(rng.randrange(size // 4, size)))
        for i in range(files)
    }
    spec[b"small.txt"] = (FILE, b"a small file\n")
    tree = where / f"tree-{seed}"
    write_tree(tree, spec)
    image = where / f"image-{seed}.img"
    make(str(tree), image, date=parse_date(DATE), quiet=True)
    return image


@pytest.fixture(scope="session")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_image(tmp_path_factory.mktemp("images"), seed=1)


@pytest.fixture(scope="session")
def other_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another image, of the same kind, to replace the first one on the server."""
    return make_image(tmp_path_factory.mktemp("images"), seed=2)


@pytest.fixture
def root(tmp_path: Path, image: Path) -> Path:
    """The folder nginx serves: disk.img is `image`."""
    served_copy(image, tmp_path / "www")
    return tmp_path / "www"


@pytest.fixture
def nginx(root: Path) -> Iterator[Nginx]:
    with Nginx(root) as server:
        yield server


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"
