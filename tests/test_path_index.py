"""The path index: lookups and listings from the index alone, reads of one entry, reindex making what make
makes, and the same answers as an image read through its trees."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest
from gitservers import make_repo
from trees import DIR, EXEC, FILE, LINK, commit_directory, git, read_fs_tree, read_image_tree, write_tree

import docteur
from docteur.bytesource.mapped import MappedFile
from docteur.image.format import PACK_OFFSET
from docteur.reindex import reindex
from docteur.verify import verify

WIDE = 3000  # entries of one folder


def _spec() -> dict[bytes, tuple[int, bytes]]:
    spec = {
        b"README.md": (FILE, b"# indexed\n" * 20),
        b"bin/run": (EXEC, b"#!/bin/sh\necho run\n"),
        b"docs/guide/deep/er/still.txt": (FILE, b"deep\n" * 50),
        b"docs/\xc3\xbcn\xc3\xafc\xc3\xb6d\xc3\xa9.txt": (FILE, "ünïcödé\n".encode()),
        b"docs/latin-\xe9.txt": (FILE, b"not UTF-8\n"),
        b"docs/index.md": (LINK, b"guide/deep/er/still.txt"),
        b"empty-dir": (DIR, b""),
        b"empty-file": (FILE, b""),
        b"same-1": (FILE, b"same content\n"),
        b"same-2": (FILE, b"same content\n"),
    }
    for i in range(WIDE):
        spec[b"wide/entry-%05d.txt" % i] = (FILE, b"entry %d\n" % i * (i % 5 + 1))
    return spec


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("indexed") / "src"
    write_tree(root, _spec())
    return root


@pytest.fixture(scope="module")
def images(source: Path) -> tuple[Path, Path]:
    """(indexed, plain) images of the same tree."""
    from docteur.make import make, parse_date

    when = parse_date("2020-10-10T08:00:00+00:00")
    indexed, plain = source.parent / "indexed.img", source.parent / "plain.img"
    make(str(source), indexed, date=when, quiet=True)
    make(str(source), plain, date=when, quiet=True, index=False)
    return indexed, plain


def test_indexed_and_plain_images_read_the_same(images: tuple[Path, Path], source: Path) -> None:
    indexed, plain = images
    with docteur.open(indexed) as a, docteur.open(plain) as b:
        assert a.indexed and not b.indexed
        assert a.commit == b.commit
        tree = read_image_tree(a)
        assert tree == read_image_tree(b) == read_fs_tree(source)
        for directory, _, _ in a.walk():
            assert a.scandir(directory) == b.scandir(directory)
        assert dict(a.read_all()) == dict(b.read_all())
        assert a.readlink("docs/index.md") == "guide/deep/er/still.txt"
        assert a.stat("wide/entry-02999.txt").size == len(b"entry 2999\n" * 5)
    assert verify(str(indexed)).ok and verify(str(plain)).ok


class _Recording(MappedFile):
    """A mapped image that remembers which byte ranges were read."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.reads: list[tuple[int, int]] = []

    def read(self, offset: int, length: int) -> memoryview:
        self.reads.append((offset, length))
        return super().read(offset, length)


def test_listings_and_sizes_come_from_the_index_alone(images: tuple[Path, Path]) -> None:
    source = _Recording(images[0])
    with docteur.open(source) as img:
        objects = (PACK_OFFSET + 12, PACK_OFFSET + img.placement.pack_length - 20)
        source.reads.clear()
        for directory, _, files in img.walk():
            img.scandir(directory)
            for name in files:
                img.stat(f"{directory}/{name}" if directory else name)
        assert img.exists("wide/entry-01234.txt") and not img.exists("wide/nope")
        touched = [(at, n) for at, n in source.reads if at < objects[1] and at + n > objects[0]]
        assert touched == [], "a listing or a stat read the PACK's objects"
        assert len({at for at, _ in source.reads}) < 40  # a few records, each read once
        source.reads.clear()
        assert img.read("wide/entry-00042.txt") == b"entry 42\n" * 3
        inside = [r for r in source.reads if objects[0] <= r[0] < objects[1]]
        assert len(inside) == 1  # one entry, read in one call


def test_a_fresh_process_reads_an_indexed_image_without_importing_datrie(images: tuple[Path, Path]) -> None:
    import subprocess
    import sys

    code = (
        "import sys, docteur\n"
        f"img = docteur.open({str(images[0])!r})\n"
        "sys.stdout.write(img.read('wide/entry-00007.txt').decode())\n"
        "assert 'datrie' not in sys.modules and 'dulwich' not in sys.modules, sorted(sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, check=False)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout == b"entry 7\n" * 3


@pytest.mark.parametrize("block_size", [512, 4096])
def test_reindex_gives_what_make_gives(images: tuple[Path, Path], source: Path, block_size: int) -> None:
    from docteur.make import make, parse_date

    when = parse_date("2020-10-10T08:00:00+00:00")
    indexed, plain = source.parent / f"i{block_size}.img", source.parent / f"p{block_size}.img"
    make(str(source), indexed, date=when, quiet=True, block_size=block_size)
    make(str(source), plain, date=when, quiet=True, block_size=block_size, index=False)
    out = source.parent / f"r{block_size}.img"
    # Without a section table the block size is inferred, the smallest the layout fits: 512 here, as
    # 512 fits any layout whose padding is under 512 bytes. A larger one is given as make was.
    made = reindex(plain, out, block_size=None if block_size == 512 else block_size)
    assert made.block_size == block_size and out.read_bytes() == indexed.read_bytes()
    reindex(out)  # again, in place: nothing changes
    assert out.read_bytes() == indexed.read_bytes()


def test_reindex_of_a_repository_image_with_history(tmp_path: Path) -> None:
    from docteur.make import make

    repo = make_repo(tmp_path / "r.git", {"a.txt": b"a\n" * 300, "d/b.txt": b"b\n" * 200}, commits=3)
    indexed, plain = tmp_path / "i.img", tmp_path / "p.img"
    make(str(repo.path), indexed, history=True, quiet=True)
    make(str(repo.path), plain, history=True, quiet=True, index=False)
    reindex(plain)
    assert plain.read_bytes() == indexed.read_bytes()


def test_reindex_fixes_ocaml_docteurs_header_offset(images: tuple[Path, Path], tmp_path: Path) -> None:
    """OCaml docteur stored round-up(PACK length) while writing the IDX at round-up(28 + PACK length)."""
    indexed, plain = images
    data = bytearray(plain.read_bytes())
    (offset,) = struct.unpack_from("<q", data, 20)
    struct.pack_into("<q", data, 20, offset - 512)  # what OCaml wrote when 28 + length spilled over
    ocaml = tmp_path / "ocaml.img"
    ocaml.write_bytes(data)
    with docteur.open(ocaml) as img:
        assert not img.indexed
    assert not verify(str(ocaml)).ok  # verify reports the wrong offset
    reindex(ocaml)
    assert ocaml.read_bytes() == indexed.read_bytes()


def test_reindex_refuses_a_damaged_image_and_leaves_the_target_alone(
    images: tuple[Path, Path], tmp_path: Path
) -> None:
    data = bytearray(images[1].read_bytes())
    data[PACK_OFFSET + 100] ^= 0xFF  # the PACK no longer matches its checksum
    damaged, target = tmp_path / "damaged.img", tmp_path / "target.img"
    damaged.write_bytes(data)
    target.write_bytes(b"the old image")
    with pytest.raises(docteur.CorruptImageError, match="checksum"):
        reindex(damaged, target)
    assert target.read_bytes() == b"the old image"
    assert sorted(os.listdir(tmp_path)) == ["damaged.img", "target.img"]  # no temporary file left


def test_cli_reindex_info_and_no_index(cli, images: tuple[Path, Path], source: Path, tmp_path: Path) -> None:
    indexed, plain = images
    made = cli(
        "docteur-make", "-q", "--no-index", "-d", "2020-10-10T08:00:00+00:00", source, tmp_path / "p.img"
    )
    assert made.returncode == 0, made.stderr
    assert (tmp_path / "p.img").read_bytes() == plain.read_bytes()
    assert b"section\t: none" in cli("docteur", "info", tmp_path / "p.img").stdout
    done = cli("docteur", "reindex", tmp_path / "p.img", "-o", tmp_path / "r.img")
    assert done.returncode == 0 and done.stdout == done.stderr == b""
    assert (tmp_path / "r.img").read_bytes() == indexed.read_bytes()
    info = cli("docteur", "info", "--json", tmp_path / "r.img").stdout
    assert b'"indexed": true' in info and b'"name": "paths"' in info
    missing = cli("docteur", "reindex", tmp_path / "nowhere.img")
    assert missing.returncode == 1 and missing.stderr.count(b"\n") == 1 and b"nowhere.img" in missing.stderr


def test_a_submodule_shows_as_an_empty_directory(tmp_path: Path) -> None:
    from docteur.make import make

    write_tree(tmp_path / "repo", {b"a.txt": (FILE, b"a\n")})
    commit_directory(tmp_path / "repo")
    git(tmp_path / "repo", "update-index", "--add", "--cacheinfo", f"160000,{'1' * 40},sub")
    git(tmp_path / "repo", "commit", "-q", "-m", "sub")
    make(str(tmp_path / "repo"), tmp_path / "i.img", quiet=True)
    with docteur.open(tmp_path / "i.img") as img:
        assert img.indexed
        assert img.stat("sub").mode == 0o160000 and img.listdir("sub") == []
        assert img.listdir("") == ["a.txt", "sub"]
    assert verify(str(tmp_path / "i.img")).ok
