"""Round trips: any tree made into an image, from a directory or from a repository, reads back exactly."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from trees import (
    DIR,
    EXEC,
    FILE,
    LINK,
    commit_directory,
    image_tree,
    read_fs_tree,
    without_empty_dirs,
    write_tree,
)

import docteur
from docteur.make import make, parse_date
from docteur.reindex import reindex

DATE = parse_date("2021-01-01T00:00:00Z")

# Names: any bytes a Linux file name may hold (no '/', no NUL, not '.' or '..'), non-UTF-8 and odd bytes
# included, and a few that git itself refuses to add ('.git').
names = st.binary(min_size=1, max_size=12).filter(
    lambda n: b"/" not in n and b"\0" not in n and n not in (b".", b"..") and n.lower() != b".git"
)
contents = st.one_of(st.binary(max_size=300), st.sampled_from([b"", b"\n", b"same content\n"]))
leaves = st.one_of(
    st.tuples(st.just(FILE), contents),
    st.tuples(st.just(EXEC), contents),
    st.tuples(st.just(LINK), st.binary(min_size=1, max_size=40).filter(lambda t: b"\0" not in t)),
)


def _tree(depth: int) -> st.SearchStrategy[dict]:
    node = leaves if depth == 0 else st.one_of(leaves, st.deferred(lambda: _tree(depth - 1)))
    return st.dictionaries(names, node, max_size=6)


def flatten(tree: dict, prefix: bytes = b"") -> dict[bytes, tuple[int, bytes]]:
    flat: dict[bytes, tuple[int, bytes]] = {}
    for name, value in tree.items():
        path = prefix + name
        if isinstance(value, dict):
            flat[path] = (DIR, b"")
            flat.update(flatten(value, path + b"/"))
        else:
            flat[path] = value
    return flat


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tree=_tree(3))
def test_directory_round_trip(tmp_path_factory, tree: dict) -> None:
    root = tmp_path_factory.mktemp("rt")
    write_tree(root / "src", flatten(tree))
    expected = read_fs_tree(root / "src")
    make(str(root / "src"), root / "disk.img", date=DATE, quiet=True)
    assert image_tree(root / "disk.img") == expected
    # Read through its trees instead of the path index: the same; and reindexed: the same bytes.
    make(str(root / "src"), root / "plain.img", date=DATE, quiet=True, index=False)
    assert image_tree(root / "plain.img") == expected
    reindex(root / "plain.img")
    assert (root / "plain.img").read_bytes() == (root / "disk.img").read_bytes()
    shutil.rmtree(root)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tree=_tree(2))
def test_repository_round_trip(tmp_path_factory, tree: dict) -> None:
    root = tmp_path_factory.mktemp("rt")
    write_tree(root / "src", flatten(tree))
    expected = without_empty_dirs(read_fs_tree(root / "src"))
    commit = commit_directory(root / "src")
    make(str(root / "src"), root / "disk.img", quiet=True)
    with docteur.open(root / "disk.img") as img:
        assert img.commit == commit
    assert image_tree(root / "disk.img") == expected
    shutil.rmtree(root)


def test_large_files_round_trip(make_image, tmp_path: Path) -> None:
    rng = random.Random(1)
    noise = rng.randbytes(12 << 20)  # incompressible, over 10 MB
    text = b"".join(b"line %d of a long and repetitive file\n" % i for i in range(400_000))  # ~15 MB
    write_tree(
        tmp_path / "d", {b"noise.bin": (FILE, noise), b"big/text.log": (FILE, text), b"small": (FILE, b"s")}
    )
    image = make_image(tmp_path / "d")
    with docteur.open(image) as img:
        assert img.read("noise.bin") == noise
        assert img.read("big/text.log") == text
        assert img.stat("noise.bin").size == len(noise)
        with img.open("big/text.log") as f:
            f.seek(len(text) - 10)
            assert f.read() == text[-10:]


def test_thousands_of_small_files_round_trip(make_image, tmp_path: Path) -> None:
    spec = {}
    for i in range(3000):
        page = b"<p>page %d</p>\n" % i + b"boilerplate " * (i % 7)
        spec[b"pages/%02d/page-%04d.html" % (i % 40, i)] = (FILE, page)
    write_tree(tmp_path / "d", spec)
    expected = read_fs_tree(tmp_path / "d")
    assert image_tree(make_image(tmp_path / "d")) == expected
    shutil.copytree(tmp_path / "d", tmp_path / "repo")
    commit_directory(tmp_path / "repo")
    assert image_tree(make_image(tmp_path / "repo")) == without_empty_dirs(expected)
