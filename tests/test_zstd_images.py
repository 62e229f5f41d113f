"""zstd images: the same commit, trees and files as the zlib image of the same source, read by every
reader; git still accepts their PACK and IDX; convert goes both ways; verify checks every frame."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest
from conftest import DATE
from gitservers import make_repo
from test_image_format import split_image
from trees import EXEC, FILE, LINK, read_fs_tree, read_image_tree, write_tree

import docteur
from docteur.convert import convert
from docteur.extract import extract
from docteur.make import make, parse_date
from docteur.sections import BLOBS, FRAMES
from docteur.sections.table import encode_table
from docteur.verify import verify

WHEN = parse_date(DATE)


def _spec() -> dict[bytes, tuple[int, bytes]]:
    spec = {
        b"README.md": (FILE, b"# zstd\n" * 30),
        b"bin/run": (EXEC, b"#!/bin/sh\necho run\n"),
        b"link": (LINK, b"README.md"),
        b"empty": (FILE, b""),
        b"big/log.txt": (FILE, b"".join(b"line %d of a big log\n" % i for i in range(300_000))),  # ~6 MB
        b"same-a": (FILE, b"same\n"),
        b"same-b": (FILE, b"same\n"),
    }
    for i in range(600):
        spec[b"pages/p%03d.html" % i] = (
            FILE,
            b"<html><body><p>page %d of the zstd tests</p></body></html>\n" % i,
        )
    return spec


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(source, zlib image, zstd image)."""
    root = tmp_path_factory.mktemp("zstd")
    write_tree(root / "src", _spec())
    zlib_img, zstd_img = root / "zlib.img", root / "zstd.img"
    make(str(root / "src"), zlib_img, date=WHEN, quiet=True)
    make(str(root / "src"), zstd_img, date=WHEN, quiet=True, compress="zstd")
    return root / "src", zlib_img, zstd_img


def test_same_ids_same_files(images: tuple[Path, Path, Path]) -> None:
    source, zlib_img, zstd_img = images
    with docteur.open(zlib_img) as a, docteur.open(zstd_img) as b:
        assert (a.commit, a.tree) == (b.commit, b.tree)
        assert b.frame_count > 1 and a.frame_count == 0
        assert read_image_tree(b) == read_image_tree(a) == read_fs_tree(source)
        assert dict(b.read_all()) == dict(a.read_all())
        names = [s.name for s in b.sections.sections]  # type: ignore[union-attr]
        assert names[0] == "paths" and names[-1] == "frames"
        with b.open("big/log.txt") as f:
            f.seek(5_000_000)
            assert (
                f.read(20)
                == (b"".join(b"line %d of a big log\n" % i for i in range(300_000)))[5_000_000:5_000_020]
            )
        assert b.objects.get(b.stat("README.md").oid) == ("blob", b"# zstd\n" * 30)
    assert zstd_img.stat().st_size < zlib_img.stat().st_size


def test_git_accepts_the_pack_of_a_zstd_image(images: tuple[Path, Path, Path], tmp_path: Path) -> None:
    _, idx = split_image(images[2], tmp_path)
    done = subprocess.run(["git", "verify-pack", "-v", str(idx)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    kinds = {
        line.split()[1]
        for line in done.stdout.splitlines()
        if len(line.split()) > 2 and len(line.split()[0]) == 40
    }
    assert kinds == {"commit", "tree"}  # the files are in the frames


def test_every_reader_reads_a_zstd_image(images: tuple[Path, Path, Path], tmp_path: Path, cli) -> None:
    source, _, image = images
    assert (
        cli("docteur-cat", image, "pages/p042.html").stdout
        == b"<html><body><p>page 42 of the zstd tests</p></body></html>\n"
    )
    listed = cli("docteur-ls", "-l", image, "bin").stdout.decode()
    assert listed.startswith("-rwxr-xr-x") and "run" in listed
    extract(docteur.open(image), str(tmp_path / "out"))
    assert read_fs_tree(tmp_path / "out") == read_fs_tree(source)
    import fsspec

    fs = fsspec.filesystem("docteur", fo=str(image))
    assert fs.cat("same-b") == b"same\n" and fs.info("big/log.txt")["size"] > 5_000_000
    info = cli("docteur", "info", image).stdout.decode()
    assert "kind\t: zstd, " in info and " frames of " in info
    verified = cli("docteur-verify", image)
    assert verified.returncode == 0, verified.stderr


def test_fuse_reads_a_zstd_image(images: tuple[Path, Path, Path], tmp_path: Path, cli) -> None:
    source, _, image = images
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    assert cli("docteur-mount", image, mountpoint).returncode == 0
    try:
        assert read_fs_tree(mountpoint) == read_fs_tree(source)
    finally:
        subprocess.run(["fusermount3", "-u", str(mountpoint)], check=True)


def test_convert_both_ways(images: tuple[Path, Path, Path], tmp_path: Path) -> None:
    _, zlib_img, zstd_img = images
    there, back = tmp_path / "there.img", tmp_path / "back.img"
    convert(zlib_img, there, compress="zstd")
    convert(there, back, compress="zlib")
    for path in (there, back):
        assert verify(str(path)).ok
        with docteur.open(path) as img, docteur.open(zlib_img) as original:
            assert (img.commit, img.tree) == (original.commit, original.tree)
            assert dict(img.read_all()) == dict(original.read_all())
    with docteur.open(there) as a, docteur.open(zstd_img) as b:
        assert a.frame_count == b.frame_count  # the same files, in the same order, framed alike
    with docteur.open(back) as img:
        assert img.frame_count == 0


def test_history_blobs_of_a_zstd_image(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "r.git", {"a.txt": b"a line of text\n" * 400, "d/b.txt": b"b\n" * 300}, commits=3
    )
    image = tmp_path / "h.img"
    make(str(repo.path), image, history=True, quiet=True, compress="zstd")
    with docteur.open(image) as img:
        assert img.sections.find(BLOBS) is not None  # type: ignore[union-attr]
        first = [c.id for c in img.log()][-1]
        old = img.at(first)
        assert not old.indexed and old.read("a.txt") == (b"a line of text\n" * 400)[: 15 * 400 // 3]
    assert verify(str(image)).ok
    back = tmp_path / "back.img"
    convert(image, back, compress="zlib")
    with docteur.open(back) as img:
        assert len(list(img.log())) == 3


def _resealed(data: bytearray, image: Path) -> bytes:
    with docteur.open(image) as img:
        table = img.sections
    assert table is not None
    sections = [s._replace(checksum=hashlib.sha256(data[s.offset : s.end]).digest()) for s in table.sections]
    data[table.offset : table.offset + table.length] = encode_table(table.block_size, sections)
    return bytes(data)


def test_damaged_frames_are_refused(images: tuple[Path, Path, Path], tmp_path: Path) -> None:
    _, _, image = images
    with docteur.open(image) as img:
        section = img.sections.find(FRAMES)  # type: ignore[union-attr]
    assert section is not None
    data = bytearray(image.read_bytes())
    data[section.offset + section.length // 2] ^= 0x04
    bad = tmp_path / "bad.img"
    bad.write_bytes(_resealed(data, image))
    report = verify(str(bad))
    assert not report.ok and any(p.startswith(("frame", "blob", "dictionary")) for p in report.problems)
    refused = 0
    with docteur.open(bad) as img:
        for path, _ in read_fs_tree(images[0]).items():
            try:
                got = img.read(path.decode())
            except (docteur.CorruptImageError, IsADirectoryError):
                refused += 1
                continue
            assert got == docteur.open(images[1]).read(path.decode())
    assert refused > 0


def test_zstd_needs_the_index_and_no_base(images: tuple[Path, Path, Path], tmp_path: Path) -> None:
    source = images[0]
    with pytest.raises(docteur.DocteurError, match="needs the index"):
        make(str(source), tmp_path / "x.img", compress="zstd", index=False, quiet=True)
    with pytest.raises(docteur.DocteurError, match="unknown compression"):
        make(str(source), tmp_path / "x.img", compress="lz4", quiet=True)
    assert not (tmp_path / "x.img").exists()
