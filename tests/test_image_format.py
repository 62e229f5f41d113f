"""The on-disk layout: byte-compatible with OCaml docteur, and a PACK/IDX that git accepts."""

from __future__ import annotations

import hashlib
import random
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from gitservers import Executable, Symlink, make_repo
from trees import FILE, LINK, write_tree

import docteur
from docteur.blocksize import align
from docteur.bytesource.memory import InMemory
from docteur.image.format import PACK_OFFSET, locate
from docteur.sections.table import SectionTable, locate_table
from docteur.verify import verify

SAMPLE = {
    b"README.md": (FILE, b"# sample\n" * 50),
    b"docs/a.md": (FILE, b"alpha\n" * 100),
    b"docs/b.md": (FILE, b"alpha\n" * 99 + b"beta\n"),
    b"link": (LINK, b"docs/a.md"),
}


def _reseal(data: bytearray, table: SectionTable) -> None:
    """Give every section its checksum again, and the table its own: only the readers' checks are left."""
    body = table.offset + table.length - 32
    for i, s in enumerate(table.sections):
        at = table.offset + 24 + 56 * i + 24
        data[at : at + 32] = hashlib.sha256(data[s.offset : s.end]).digest()
    data[body : body + 32] = hashlib.sha256(data[table.offset : body]).digest()


@pytest.mark.parametrize(("where", "at"), [("table", 20), ("paths", 12), ("refs", 6)])
def test_a_reserved_field_that_is_not_zero_is_refused(
    make_image, tmp_path: Path, where: str, at: int
) -> None:
    """Each reserved field the format says is zero (the section table's, the path index's header's, the
    refs section's): set and re-sealed, it makes the image one docteur does not write, which the reader
    and docteur-verify refuse."""
    repo = make_repo(tmp_path / "repo.git", {"README.md": b"# sample\n" * 50, "docs/a.md": b"alpha\n"})
    data = bytearray(make_image(repo.path, branch=["main"]).read_bytes())
    placement, _ = locate(InMemory(bytes(data)))
    table = locate_table(InMemory(bytes(data)), placement.idx_end)
    assert table is not None
    start = table.offset if where == "table" else next(s.offset for s in table.sections if s.name == where)
    data[start + at] = 1
    _reseal(data, table)
    image = tmp_path / "reserved.img"
    image.write_bytes(data)
    assert not verify(str(image)).ok
    with pytest.raises(docteur.CorruptImageError), docteur.open(image) as img:
        img.read("README.md")


def split_image(image: Path, into: Path) -> tuple[Path, Path]:
    """Cut the PACK and the IDX out of an image, by the header and the IDX alone."""
    data = image.read_bytes()
    sections, _ = locate(InMemory(data))
    pack = into / "cut.pack"
    idx = into / "cut.idx"
    pack.write_bytes(data[PACK_OFFSET : PACK_OFFSET + sections.pack_length])
    idx.write_bytes(data[sections.idx_offset : sections.idx_end])
    return pack, idx


@pytest.fixture
def sample_dir(tmp_path: Path) -> Path:
    write_tree(tmp_path / "sample", SAMPLE)
    return tmp_path / "sample"


@pytest.mark.parametrize("block_size", [512, 4096, 65536])
def test_layout_header_padding_and_alignment(make_image, sample_dir: Path, block_size: int) -> None:
    plain = make_image(sample_dir, block_size=block_size, index=False).read_bytes()
    data = make_image(sample_dir, block_size=block_size).read_bytes()
    commit, idx_offset = struct.unpack_from("<20sq", data)
    placement, index = locate(InMemory(data))
    with docteur.open(make_image(sample_dir, block_size=block_size)) as img:
        assert commit.hex() == img.commit and img.indexed
    assert data[PACK_OFFSET : PACK_OFFSET + 4] == b"PACK"
    assert idx_offset == placement.idx_offset == align(PACK_OFFSET + placement.pack_length, block_size)
    assert data[idx_offset : idx_offset + 4] == b"\xfftOc"
    assert data[PACK_OFFSET + placement.pack_length : idx_offset].strip(b"\0") == b""
    assert index.count == 7  # commit, 2 trees, 4 blobs
    # Without the extension: exactly OCaml docteur's layout, and the first bytes of the indexed image.
    assert len(plain) == align(placement.idx_end, block_size)
    assert plain[placement.idx_end :].strip(b"\0") == b""
    assert data[: len(plain)] == plain
    # The extension: a table at the next block, sections on block boundaries, zeros between them.
    table = locate_table(InMemory(data), placement.idx_end)
    assert table is not None and table.offset == len(plain) and table.block_size == block_size
    assert [s.name for s in table.sections] == ["paths"]
    assert len(data) == align(table.end, block_size)
    at = table.offset + table.length
    for s in table.sections:
        assert s.offset % block_size == 0 and data[at : s.offset].strip(b"\0") == b""
        assert hashlib.sha256(data[s.offset : s.end]).digest() == s.checksum
        at = s.end
    assert data[at:].strip(b"\0") == b""


def test_pack_and_idx_pass_git_from_a_directory(make_image, sample_dir: Path, tmp_path: Path) -> None:
    pack, idx = split_image(make_image(sample_dir), tmp_path)
    subprocess.run(["git", "verify-pack", str(idx)], check=True, capture_output=True)
    again = tmp_path / "again.pack"
    shutil.copy(pack, again)
    subprocess.run(["git", "index-pack", "-o", str(tmp_path / "again.idx"), str(again)], check=True)
    assert (tmp_path / "again.idx").read_bytes() == idx.read_bytes()


def test_pack_and_idx_pass_git_from_a_repository_with_history(make_image, tmp_path: Path) -> None:
    files = {"a.txt": b"line\n" * 400, "bin/run": Executable(b"#!/bin/sh\necho hi\n"), "l": Symlink(b"a.txt")}
    repo = make_repo(tmp_path / "repo.git", files, commits=4)
    pack, idx = split_image(make_image(repo.path, history=True), tmp_path)
    listing = subprocess.run(["git", "verify-pack", "-v", str(idx)], check=True, capture_output=True).stdout
    assert b"chain length = " in listing  # the history is stored as deltas
    again = tmp_path / "again.pack"
    shutil.copy(pack, again)
    subprocess.run(["git", "index-pack", "-o", str(tmp_path / "again.idx"), str(again)], check=True)
    assert (tmp_path / "again.idx").read_bytes() == idx.read_bytes()


def test_reader_accepts_ocaml_docteurs_off_by_one_block_offset(make_image, tmp_path: Path) -> None:
    # Find a PACK length L where round-up(L) != round-up(28 + L): OCaml docteur stored the former.
    rng = random.Random(7)
    for size in range(400, 4000, 7):
        write_tree(tmp_path / f"d{size}", {b"f": (FILE, rng.randbytes(size))})
        image = make_image(tmp_path / f"d{size}")
        data = bytearray(image.read_bytes())
        sections, _ = locate(InMemory(bytes(data)))
        legacy = align(sections.pack_length, 512)
        if legacy != sections.idx_offset:
            break
    else:
        pytest.fail("no PACK length with a differing legacy offset")
    struct.pack_into("<q", data, 20, legacy)
    image.write_bytes(bytes(data))
    with docteur.open(image) as img:
        assert img.read("f") == (tmp_path / f"d{size}" / "f").read_bytes()
    report = verify(str(image))
    assert [p for p in report.problems if "header names IDX offset" in p]


def test_reader_ignores_zeros_a_block_device_adds(make_image, sample_dir: Path) -> None:
    image = make_image(sample_dir)
    with image.open("ab") as f:
        f.write(bytes(3 * 512))
    with docteur.open(image) as img:
        assert img.read("docs/b.md") == SAMPLE[b"docs/b.md"][1]


def test_same_source_and_date_give_identical_images(make_image, sample_dir: Path, tmp_path: Path) -> None:
    assert make_image(sample_dir).read_bytes() == make_image(sample_dir).read_bytes()
    repo = make_repo(tmp_path / "r.git", {"a": b"x" * 1000, "b": b"x" * 999 + b"y"}, commits=3)
    first = make_image(repo.path, history=True).read_bytes()
    assert first == make_image(repo.path, history=True).read_bytes()


def test_image_is_no_larger_than_git_pack_objects(make_image, tmp_path: Path) -> None:
    rng = random.Random(3)
    words = [rng.randbytes(4).hex().encode() for _ in range(300)]
    spec = {}
    for i in range(120):
        text = b" ".join(rng.choice(words) for _ in range(400))
        spec[b"book/ch%03d.txt" % i] = (FILE, text)
        spec[b"book/ch%03d-edit.txt" % i] = (FILE, text[:1000] + b" edited " + text[1000:])
    write_tree(tmp_path / "book", spec)
    image = make_image(tmp_path / "book")
    with docteur.open(image) as img:
        oids = "\n".join(img.objects).encode() + b"\n"
    # git's own pack of the same objects, from a repository holding them
    repo = tmp_path / "peer.git"
    subprocess.run(["git", "init", "-q", "--bare", str(repo)], check=True)
    pack, _ = split_image(image, tmp_path)
    subprocess.run(
        ["git", "--git-dir", str(repo), "index-pack", "--stdin"],
        input=pack.read_bytes(),
        check=True,
        capture_output=True,
    )
    peer = subprocess.run(
        [
            "git",
            "--git-dir",
            str(repo),
            "pack-objects",
            "--stdout",
            "--window=10",
            "--depth=50",
            "--no-reuse-delta",
            "-q",
        ],
        input=oids,
        capture_output=True,
        check=True,
    ).stdout
    placement, index = locate(InMemory(image.read_bytes()))
    assert placement.pack_length <= len(peer)
    # The extension (the path index) comes on top, and is measured apart (make bench).
    assert align(placement.idx_end, 512) <= align(PACK_OFFSET + len(peer), 512) + align(index.length, 512)
