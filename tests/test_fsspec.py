"""The `docteur` fsspec protocol, used only through fsspec's own API on a real image."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import fsspec
import pytest
from trees import EXEC, FILE, LINK, image_of, write_tree

from docteur.fsspec_fs import DocteurFileSystem

COMMIT_TIME = 1602316800  # conftest's DATE
SPEC = {
    b"README.md": (FILE, b"hello\nworld\n"),
    b"bin/tool": (EXEC, b"#!/bin/sh\nexit 0\n"),
    b"docs/a.md": (FILE, b"# A\n"),
    b"docs/b.md": (FILE, b"# B\n" * 1000),
    b"docs/deeper/z.txt": (FILE, b"zzz"),
    b"docs/deeper/y.md": (FILE, b"# Y\n"),
    b"link": (LINK, b"docs/a.md"),
}


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fsspec") / "src"
    write_tree(root, SPEC)
    return root


@pytest.fixture(scope="module")
def image(source: Path) -> Path:
    return image_of(source)


@pytest.fixture
def fs(image: Path) -> DocteurFileSystem:
    return fsspec.filesystem("docteur", fo=str(image))


def test_protocol_is_registered_by_entry_point() -> None:
    assert fsspec.get_filesystem_class("docteur") is DocteurFileSystem
    assert "docteur" in fsspec.available_protocols()


def test_ls_and_info(fs: DocteurFileSystem) -> None:
    assert fs.ls("", detail=False) == ["README.md", "bin", "docs", "link"]
    assert fs.ls("/docs/", detail=False) == ["docs/a.md", "docs/b.md", "docs/deeper"]
    assert fs.ls("docs/a.md", detail=False) == ["docs/a.md"]
    detail = {e["name"]: e for e in fs.ls("docs")}
    assert detail["docs/b.md"]["size"] == 4000 and detail["docs/b.md"]["type"] == "file"
    assert detail["docs/deeper"]["type"] == "directory"
    info = fs.info("docteur://bin/tool")
    assert (info["name"], info["size"], info["mode"], info["mtime"]) == (
        "bin/tool",
        17,
        0o100755,
        COMMIT_TIME,
    )
    link = fs.info("link")
    assert (link["type"], link["islink"], link["destination"]) == ("link", True, "docs/a.md")
    assert fs.isdir("docs") and fs.isfile("README.md") and not fs.exists("nope")
    assert fs.modified("README.md").timestamp() == COMMIT_TIME
    assert fs.ukey("docs/a.md") == fs.info("docs/a.md")["oid"]


def test_cat_and_open(fs: DocteurFileSystem) -> None:
    assert fs.cat("docs/a.md") == b"# A\n"
    assert fs.cat_file("docs/b.md", start=4, end=8) == b"# B\n"
    assert fs.cat(["README.md", "docs/a.md"]) == {"README.md": b"hello\nworld\n", "docs/a.md": b"# A\n"}
    with fs.open("README.md", "rt") as f:
        assert f.readlines() == ["hello\n", "world\n"]
    with fs.open("docs/b.md", "rb") as f:
        f.seek(-4, os.SEEK_END)
        assert f.read() == b"# B\n"
    assert fs.head("docs/b.md", 8) == b"# B\n# B\n" and fs.tail("README.md", 6) == b"world\n"


def test_glob_walk_find_match_the_source(fs: DocteurFileSystem, source: Path) -> None:
    assert fs.glob("**/*.md") == ["README.md", "docs/a.md", "docs/b.md", "docs/deeper/y.md"]
    assert fs.glob("docs/*") == ["docs/a.md", "docs/b.md", "docs/deeper"]
    ours = {(d, tuple(sorted(dirs)), tuple(sorted(files))) for d, dirs, files in fs.walk("")}
    relative = {str(source): ""}  # fsspec names the root "", os.walk's relpath "."
    theirs = {
        (relative.get(d, os.path.relpath(d, source)), tuple(sorted(dirs)), tuple(sorted(files)))
        for d, dirs, files in os.walk(source)
    }
    assert ours == theirs
    expected = sorted(p.decode() for p, (mode, _) in SPEC.items())
    assert fs.find("") == expected
    assert fs.find("docs", maxdepth=1) == ["docs/a.md", "docs/b.md"]
    assert fs.du("docs") == 4 + 4000 + 3 + 4


def test_chained_urls(image: Path, tmp_path: Path) -> None:
    with fsspec.open(f"docteur://docs/a.md::file://{image}") as f:
        assert f.read() == b"# A\n"
    with fsspec.open(f"docteur://README.md::file://{image}", "rt") as f:
        assert f.read() == "hello\nworld\n"
    files = fsspec.open_files(f"docteur://docs/*.md::file://{image}")
    assert [f.path for f in files] == ["docs/a.md", "docs/b.md"]
    cached = f"docteur://docs/deeper/z.txt::simplecache::file://{image}"
    with fsspec.open(cached, simplecache={"cache_storage": str(tmp_path)}) as f:
        assert f.read() == b"zzz"
    fs, path = fsspec.core.url_to_fs(f"docteur://docs::file://{image}")
    assert isinstance(fs, DocteurFileSystem) and fs.ls(path, detail=False)[0] == "docs/a.md"


def test_errors(fs: DocteurFileSystem, image: Path) -> None:
    with pytest.raises(FileNotFoundError):
        fs.cat("docs/missing.md")
    with pytest.raises(FileNotFoundError):
        fs.info("missing")
    with pytest.raises(NotADirectoryError):
        fs.ls("README.md/x")
    with pytest.raises(IsADirectoryError):
        fs.cat("docs")
    for write in (
        lambda: fs.pipe("new.txt", b"x"),
        lambda: fs.open("README.md", "wb"),
        lambda: fs.mkdir("newdir"),
        lambda: fs.rm("README.md"),
        lambda: fs.mv("README.md", "moved.md"),
        lambda: fs.touch("README.md"),
    ):
        with pytest.raises(OSError) as failure:
            write()
        assert failure.value.errno == errno.EROFS
    assert fs.cat("README.md") == b"hello\nworld\n"
    with pytest.raises(FileNotFoundError):
        fsspec.filesystem("docteur", fo=str(image.parent / "missing.img"))
    with pytest.raises(FileNotFoundError):
        fsspec.filesystem("docteur", fo="memory://no/such/disk.img")


def test_an_image_behind_another_fsspec_filesystem(image: Path) -> None:
    """Any fsspec URL: here fsspec's own in-memory filesystem, read in ranges through it."""
    with fsspec.open("memory://images/disk.img", "wb") as f:
        f.write(image.read_bytes())
    fs = fsspec.filesystem("docteur", fo="memory://images/disk.img")
    assert fs.cat("README.md") == b"hello\nworld\n"
    with fsspec.open("docteur://README.md::memory://images/disk.img", "rb") as f:
        assert f.read() == b"hello\nworld\n"
    fsspec.filesystem("memory").rm("images/disk.img")
