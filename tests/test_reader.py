"""The Python API: zipfile-like reads, OS-style errors, odd names, both delta kinds, corrupt images."""

from __future__ import annotations

import errno
import io
import subprocess
from pathlib import Path

import pytest
from gitservers import make_repo
from trees import DIR, EXEC, FILE, LINK, image_of, write_tree

import docteur
from docteur.bytesource.memory import InMemory
from docteur.git.objects import OFS_DELTA, REF_DELTA
from docteur.image.writer import write_image
from docteur.pack.reader import PackReader

ODD = b"caf\xe9-\xff\x01name"  # latin-1 bytes: not valid UTF-8
SPEC = {
    b"README.md": (FILE, b"hello\nworld\n"),
    b"bin/tool": (EXEC, b"#!/bin/sh\nexit 0\n"),
    b"docs/a.md": (FILE, b"# A\n"),
    b"docs/deeper/z.txt": (FILE, b"zzz"),
    b"docs.txt": (FILE, b"sorts before docs/ in git order"),
    b"empty": (FILE, b""),
    b"link": (LINK, b"docs/a.md"),
    b"outside": (LINK, b"../../etc/passwd"),
    "ünïcödé/文件.txt".encode(): (FILE, b"utf-8 names"),
    ODD: (FILE, b"odd bytes"),
    b"void": (DIR, b""),
}


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("reader")
    write_tree(root / "src", SPEC)
    return image_of(root / "src")


@pytest.fixture
def img(image: Path):
    with docteur.open(image) as opened:
        yield opened


def test_commit_and_tree_ids(img) -> None:
    assert len(img.commit) == 40 and len(img.tree) == 40
    assert img.info.tree == img.tree
    assert img.info.author == b"Dr. Greenthumb <noreply@cypress.hill>"
    assert img.info.commit_time == 1602316800


def test_read_and_open(img) -> None:
    assert img.read("README.md") == b"hello\nworld\n"
    assert img.read("/docs/deeper/z.txt") == b"zzz"
    assert img.read("./docs//a.md") == b"# A\n"
    assert img.read("empty") == b""
    with img.open("README.md") as f:
        assert isinstance(f, io.BufferedIOBase)
        assert f.readline() == b"hello\n"
        assert f.tell() == 6
        assert f.read(3) == b"wor"
        f.seek(-2, io.SEEK_END)
        assert f.read() == b"d\n"
        f.seek(0)
        assert f.read() == b"hello\nworld\n"
        assert not f.writable()


def test_listdir_is_in_git_order(img) -> None:
    names = img.listdir("")
    assert names.index("docs.txt") < names.index("docs")  # 'docs/' sorts after 'docs.txt'
    assert img.listdir("/docs") == ["a.md", "deeper"]
    assert img.listdir("void") == []


def test_stat_modes_sizes_ids(img) -> None:
    assert img.stat("bin/tool").mode == 0o100755
    assert img.stat("README.md").mode == 0o100644
    assert img.stat("README.md").size == 12
    assert img.stat("docs").mode == 0o40000
    link = img.stat("link")
    assert (link.mode, link.size) == (0o120000, len(b"docs/a.md"))
    blob = subprocess.run(["git", "hash-object", "--stdin"], input=b"zzz", capture_output=True, check=True)
    assert img.stat("docs/deeper/z.txt").oid == blob.stdout.decode().strip()


def test_symlinks_are_read_not_followed(img) -> None:
    assert img.readlink("link") == "docs/a.md"
    assert img.readlink("outside") == "../../etc/passwd"
    with pytest.raises(OSError) as e:
        img.readlink("README.md")
    assert e.value.errno == errno.EINVAL


def test_walk_like_os_walk(img) -> None:
    walked = list(img.walk())
    assert walked[0][0] == ""
    paths = {f"{d}/{n}".lstrip("/") for d, dirs, files in walked for n in files}
    assert "docs/deeper/z.txt" in paths and "link" in paths
    pruned = []
    for dirpath, dirnames, _ in img.walk():
        pruned.append(dirpath)
        dirnames[:] = [d for d in dirnames if d != "docs"]
    assert "docs" not in pruned and "docs/deeper" not in pruned


def test_exists(img) -> None:
    assert img.exists("docs") and img.exists("/docs/a.md") and img.exists("")
    assert not img.exists("nope") and not img.exists("README.md/x")


def test_errors_are_the_os_ones(img) -> None:
    with pytest.raises(FileNotFoundError):
        img.read("missing.txt")
    with pytest.raises(FileNotFoundError):
        img.stat("docs/missing/deeper")
    with pytest.raises(IsADirectoryError):
        img.read("docs")
    with pytest.raises(NotADirectoryError):
        img.listdir("README.md")
    with pytest.raises(NotADirectoryError):
        img.read("README.md/inside")


def test_dotdot_never_climbs_above_the_root(img) -> None:
    assert img.read("../../README.md") == b"hello\nworld\n"
    assert img.read("docs/../README.md") == b"hello\nworld\n"


def test_non_utf8_and_unicode_names_round_trip(img) -> None:
    odd = ODD.decode("utf-8", "surrogateescape")
    assert odd in img.listdir()
    assert img.read(odd) == b"odd bytes"
    assert img.read(ODD) == b"odd bytes"  # bytes paths work too
    assert img.read("ünïcödé/文件.txt") == b"utf-8 names"


def _entry_kinds(image: Path) -> set[int]:
    with docteur.open(image) as img:
        reader = img._pack
        return {reader.entry_header(off)[0] for _, off, _ in reader.index.entries()}


def _all_objects_match_git(image: Path, repo: Path) -> None:
    with docteur.open(image) as img:
        oids = list(img.objects)
        batch = subprocess.run(
            ["git", "--git-dir", str(repo), "cat-file", "--batch"],
            input="".join(f"{o}\n" for o in oids).encode(),
            capture_output=True,
            check=True,
        ).stdout
        out = io.BytesIO(batch)
        for oid in oids:
            header = out.readline().split()
            assert header[0].decode() == oid
            data = out.read(int(header[2]))
            out.read(1)
            assert img.objects.get(oid) == (header[1].decode(), data)


def test_ofs_delta_history_reads_back(make_image, tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "r.git", {"a.txt": b"0123456789abcdef" * 500, "b.txt": b"xyz" * 900}, commits=6
    )
    image = make_image(repo.path, history=True)
    assert OFS_DELTA in _entry_kinds(image)
    _all_objects_match_git(image, repo.path)


def test_ref_delta_reads_back(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r.git", {"a.txt": b"0123456789abcdef" * 500}, commits=6)
    oids = subprocess.run(
        ["git", "--git-dir", str(repo.path), "rev-list", "--objects", repo.head],
        capture_output=True,
        check=True,
    ).stdout
    subprocess.run(  # without --delta-base-offset, git writes REF_DELTA entries
        ["git", "--git-dir", str(repo.path), "pack-objects", "-q", str(tmp_path / "p")],
        input=oids,
        capture_output=True,
        check=True,
    )
    pack = next(tmp_path.glob("p-*.pack"))
    image = tmp_path / "ref.img"
    write_image(image, bytes.fromhex(repo.head), pack, pack.with_suffix(".idx").read_bytes(), 512)
    assert REF_DELTA in _entry_kinds(image)
    _all_objects_match_git(image, repo.path)
    with docteur.open(image) as img:
        assert img.read("a.txt") == b"0123456789abcdef" * 500


@pytest.mark.parametrize(
    "content",
    [b"", b"not an image at all" * 10, b"\0" * 4096, b"PACK" * 2000],
    ids=["empty", "text", "zeros", "junk"],
)
def test_not_an_image_is_a_corrupt_image_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.img"
    path.write_bytes(content)
    with pytest.raises(docteur.CorruptImageError):
        docteur.open(path)


def test_truncated_image_is_a_corrupt_image_error(image: Path, tmp_path: Path) -> None:
    data = image.read_bytes()
    for cut in (28, 100, len(data) // 2, len(data) - 600):
        bad = tmp_path / f"cut{cut}.img"
        bad.write_bytes(data[:cut])
        with pytest.raises(docteur.CorruptImageError), docteur.open(bad) as img:
            for d, _, files in img.walk():
                for f in files:
                    img.read(f"{d}/{f}")


def test_errors_are_docteur_errors() -> None:
    assert issubclass(docteur.CorruptImageError, docteur.DocteurError)


def test_pack_reader_rejects_a_non_pack(image: Path) -> None:
    data = image.read_bytes()
    with docteur.open(image) as img:
        index = img._pack.index
        for source in (InMemory(data[:40]), InMemory(data[:28] + b"JUNK" + data[32:])):
            with pytest.raises(docteur.CorruptImageError):
                PackReader(source, index, at=28)
