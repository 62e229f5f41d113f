"""The fast paths of issue 3 read the same bytes as the plain ones: read_all() in PACK order, bounded
caches and layout, the in-place IDX search, delta sizes, and the two-process delta search of make."""

from __future__ import annotations

import itertools
import random
import zlib
from pathlib import Path

import pytest
from dulwich.repo import Repo
from gitservers import make_repo
from trees import FILE, LINK, read_image_tree, write_tree

import docteur
from docteur.fs import view as image_module
from docteur.git.objects import OFS_DELTA
from docteur.pack import engine
from docteur.progress import Progress
from docteur.source import repository
from docteur.verify import verify


def _prose(rng: random.Random, words: int) -> bytes:
    vocabulary = [f"w{n}" for n in range(300)]
    return " ".join(rng.choice(vocabulary) for _ in range(words)).encode()


def _spec(dirs: int = 6, files: int = 5) -> dict[bytes, tuple[int, bytes]]:
    rng = random.Random(1)
    spec = {
        b"d%d/sub/f%d.txt" % (d, f): (FILE, _prose(rng, 50 + 10 * f))
        for d in range(dirs)
        for f in range(files)
    }
    spec[b"top.txt"] = (FILE, b"top\n")
    spec[b"d0/link"] = (LINK, b"sub/f0.txt")
    return spec


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from docteur.make import make, parse_date

    root = tmp_path_factory.mktemp("fast")
    write_tree(root / "src", _spec())
    make(str(root / "src"), root / "disk.img", date=parse_date("2020-10-10T08:00:00+00:00"), quiet=True)
    return root / "disk.img"


@pytest.fixture(scope="module")
def plain_image(image: Path) -> Path:
    """The same tree without a path index: lookups parse the trees into the trie."""
    from docteur.make import make, parse_date

    out = image.with_name("plain.img")
    when = parse_date("2020-10-10T08:00:00+00:00")
    make(str(image.parent / "src"), out, date=when, quiet=True, index=False)
    return out


def _walked(img: docteur.Image, top: str = "") -> dict[str, bytes]:
    out = {}
    for dirpath, _, files in img.walk(top):
        for name in files:
            path = f"{dirpath}/{name}" if dirpath else name
            out[path] = img.read(path)
    return out


def test_read_all_gives_every_file_once_in_pack_order(image: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(image_module, "READ_ALL_BATCH", 7)  # several batches
    with docteur.open(image) as img:
        walked = _walked(img)
        pairs = list(img.read_all())
        assert dict(pairs) == walked and len(pairs) == len(walked)
        assert dict(pairs)["d0/link"] == b"sub/f0.txt"  # a symlink gives its target
        index = img._pack.index
        offsets = [index.lookup(bytes.fromhex(img.stat(p).oid)) for p, _ in pairs]
        batches = [offsets[k : k + 7] for k in range(0, len(offsets), 7)]
        assert all(batch == sorted(batch) for batch in batches)
        assert dict(img.read_all("d1")) == {p: d for p, d in walked.items() if p.startswith("d1/")}
        with pytest.raises(NotADirectoryError):
            list(img.read_all("top.txt"))
        with pytest.raises(FileNotFoundError):
            list(img.read_all("nowhere"))


@pytest.mark.parametrize("indexed", [True, False])
def test_bounded_layout_cache_and_mapping_read_the_same(
    image: Path, plain_image: Path, indexed: bool
) -> None:
    image = image if indexed else plain_image
    with docteur.open(image) as img:
        expected = read_image_tree(img)
    released = []
    with docteur.open(image, layout_entries=4, cache_bytes=2048, mapped_bytes=1) as img:
        assert img.indexed == indexed
        real_release = img.source.release

        def counting_release() -> None:
            released.append(1)
            real_release()

        img.source.release = counting_release  # type: ignore[method-assign]
        for _ in range(2):
            assert read_image_tree(img) == expected
            assert dict(img.read_all()) == {p.decode(): c for p, (m, c) in expected.items() if m != 0o40000}
        held = img._layout._index._cached_entries if indexed else img._layout._entries
        assert held <= 4 + max(len(img.listdir(d)) for d, _, _ in img.walk())
        assert img._pack.cache.size <= 2048
    assert released  # pages were handed back while reading


def test_index_finds_every_id_and_nothing_across_two_names(image: Path) -> None:
    with docteur.open(image) as img:
        index = img._pack.index
        names = list(index)
        for i, oid in enumerate(names):
            assert index.find(oid) == i
        for a, b in itertools.pairwise(names):
            straddling = a[10:] + b[:10]  # present in the table, but not as a name
            if straddling not in names:
                assert index.find(straddling) == -1
        assert index.find(b"\xff" * 20) == -1 and index.find(b"short") == -1


def test_stat_size_of_a_delta_with_a_long_deflate_header(make_image, tmp_path: Path) -> None:
    rng = random.Random(7)
    text = _prose(rng, 3000)
    words = text.split(b" ")
    # A few words changed: a delta of many small inserts, which deflate codes with a long header.
    edited = b" ".join(w if rng.random() > 0.03 else b"x%d" % rng.randrange(10**6) for w in words)
    write_tree(tmp_path / "src", {b"a.txt": (FILE, text), b"b.txt": (FILE, edited)})
    path = make_image(tmp_path / "src")
    with docteur.open(path) as img:
        reader = img._pack
        long_headers = 0
        for _, offset, _ in reader.index.entries():
            kind, _, pos, _ = reader.entry_header(offset)
            if kind == OFS_DELTA:
                # The first 64 bytes of this stream do not inflate to the delta's two sizes.
                long_headers += len(zlib.decompressobj().decompress(reader.read(pos, 64), 24)) < 20
        assert long_headers, "the image should hold a delta whose deflate header is long"
        for name in ("a.txt", "b.txt"):
            assert img.stat(name).size == len(img.read(name))


def test_split_delta_search_is_reproducible_and_complete(
    make_image, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine, "SPLIT_ABOVE", 10)
    spec = _spec(dirs=8, files=6)
    write_tree(tmp_path / "src", spec)
    first, second = make_image(tmp_path / "src"), make_image(tmp_path / "src")
    assert first.read_bytes() == second.read_bytes()
    assert verify(str(first)).ok
    with docteur.open(first) as img:
        assert _walked(img)["d3/sub/f2.txt"] == spec[b"d3/sub/f2.txt"][1]
        assert sum(1 for _ in img.read_all()) == len(spec)


def test_git_and_dulwich_list_the_same_objects(tmp_path: Path) -> None:
    made = make_repo(tmp_path / "r.git", {"a.txt": b"a" * 3000, "dir/b.txt": b"b\n" * 700}, commits=3)
    repo, head = Repo(str(made.path)), made.head.encode()
    for history in (False, True):
        by_git = repository._listed_by_git(repo, [head], history)
        by_dulwich = repository._listed_by_dulwich(repo, [head], history, Progress(False))
        assert sorted(by_git) == sorted(by_dulwich)
        assert by_git[0] == by_dulwich[0] == (head, b"")
