"""docteur-mount: a real FUSE mount of a real image, compared with its source by find, stat and sha256sum."""

from __future__ import annotations

import errno
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import BIN, run_cli
from trees import EXEC, FILE, LINK, image_of, write_tree

COMMIT_TIME = 1602316800  # conftest's DATE
SPEC = {
    b"README.md": (FILE, b"hello\nworld\n"),
    b"bin/tool": (EXEC, b"#!/bin/sh\nexit 0\n"),
    b"docs/a.md": (FILE, b"# A\n"),
    b"docs/deeper/z.txt": (FILE, b"zzz"),
    b"docs/big.bin": (FILE, bytes(range(256)) * 2000 + b"tail"),  # several FUSE reads of 128 KiB
    b"empty": (FILE, b""),
    b"link": (LINK, b"docs/a.md"),
    b"dangling": (LINK, b"/nowhere/at/all"),
    b"caf\xe9.txt": (FILE, b"a name that is not UTF-8"),
    "ünïcödé/文件.txt".encode(): (FILE, b"utf-8 names"),
}


def _unmount(mountpoint: Path) -> None:
    if os.path.ismount(mountpoint):
        subprocess.run(["fusermount3", "-u", str(mountpoint)], check=True, timeout=30)


def _mount(image: Path, mountpoint: Path) -> subprocess.CompletedProcess[bytes]:
    mountpoint.mkdir(exist_ok=True)
    done = run_cli("docteur-mount", image, mountpoint)
    assert done.returncode == 0, done.stderr
    assert os.path.ismount(mountpoint)
    return done


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fuse") / "src"
    write_tree(root, SPEC)
    return root


@pytest.fixture(scope="module")
def image(source: Path) -> Path:
    return image_of(source)


@pytest.fixture(scope="module")
def mounted(image: Path) -> Iterator[Path]:
    mountpoint = image.parent / "mnt"
    _mount(image, mountpoint)
    yield mountpoint
    _unmount(mountpoint)


def _in(directory: Path, *command: str) -> bytes:
    return subprocess.run(command, cwd=directory, capture_output=True, check=True, timeout=60).stdout


def _sorted_lines(out: bytes) -> list[bytes]:
    return sorted(out.splitlines())


def test_find_lists_the_same_tree(source: Path, mounted: Path) -> None:
    listing = ("find", ".", "-printf", r"%y %m %P -> %l\n")
    assert _sorted_lines(_in(mounted, *listing)) == _sorted_lines(_in(source, *listing))


def test_stat_matches_the_source(source: Path, mounted: Path) -> None:
    paths = [p.decode("utf-8", "surrogateescape") for p in _in(source, "find", ".", "-mindepth", "1").split()]
    files = [p for p in paths if not os.path.isdir(source / p) or os.path.islink(source / p)]
    # Name, kind, permissions for everything; sizes for all but directories (a disk's are 4096).
    everything = ("stat", "-c", "%n %F %A", *paths)
    assert _in(mounted, *everything) == _in(source, *everything)
    sizes = ("stat", "-c", "%n %s", *files)
    assert _in(mounted, *sizes) == _in(source, *sizes)


def test_sha256sum_of_every_file(source: Path, mounted: Path) -> None:
    command = ("find", ".", "-type", "f", "-exec", "sha256sum", "{}", "+")
    ours = _sorted_lines(_in(mounted, *command))
    assert ours == _sorted_lines(_in(source, *command))
    assert len(ours) == sum(1 for mode, _ in SPEC.values() if mode in (FILE, EXEC))


def test_times_are_the_commit_time_and_owner_the_mounter(mounted: Path) -> None:
    for path in [mounted, mounted / "docs", mounted / "docs/a.md", mounted / "link"]:
        st = os.lstat(path)
        assert (st.st_mtime, st.st_ctime, st.st_atime) == (COMMIT_TIME,) * 3
        assert (st.st_uid, st.st_gid) == (os.getuid(), os.getgid())


def test_directory_link_counts(source: Path, mounted: Path) -> None:
    for name in ["", "docs", "docs/deeper", "bin"]:
        assert os.stat(mounted / name).st_nlink == os.stat(source / name).st_nlink


def test_inode_numbers_are_unique_and_stable_across_mounts(image: Path, tmp_path: Path) -> None:
    def inodes(mountpoint: Path) -> bytes:
        return _in(mountpoint, "find", ".", "-printf", r"%i %P\n")

    first, second = tmp_path / "one", tmp_path / "two"
    _mount(image, first)
    try:
        _mount(image, second)
        try:
            assert inodes(first) == inodes(second)
            numbers = [line.split()[0] for line in inodes(first).splitlines()]
            assert len(set(numbers)) == len(numbers) == len(SPEC) + 5  # root, bin, docs, docs/deeper, ünïcödé
            readdir = {e.name: e.inode() for e in os.scandir(first / "docs")}
            assert readdir == {
                e.name: os.lstat(first / "docs" / e.name).st_ino for e in os.scandir(first / "docs")
            }
        finally:
            _unmount(second)
    finally:
        _unmount(first)


WRITES: dict[str, Callable[[Path], object]] = {
    "create": lambda m: os.open(m / "new", os.O_WRONLY | os.O_CREAT, 0o644),
    "write": lambda m: os.open(m / "README.md", os.O_WRONLY),
    "append": lambda m: os.open(m / "README.md", os.O_RDWR | os.O_APPEND),
    "mkdir": lambda m: os.mkdir(m / "newdir"),
    "rm": lambda m: os.unlink(m / "README.md"),
    "rmdir": lambda m: os.rmdir(m / "docs/deeper"),
    "chmod": lambda m: os.chmod(m / "README.md", 0o600),
    "chown": lambda m: os.chown(m / "README.md", 1, 1),
    "rename": lambda m: os.rename(m / "README.md", m / "README.old"),
    "truncate": lambda m: os.truncate(m / "README.md", 0),
    "symlink": lambda m: os.symlink("README.md", m / "another-link"),
    "link": lambda m: os.link(m / "README.md", m / "hard"),
    "utime": lambda m: os.utime(m / "README.md", (0, 0)),
}


@pytest.mark.parametrize("operation", sorted(WRITES))
def test_writes_fail_with_erofs(mounted: Path, operation: str) -> None:
    with pytest.raises(OSError) as failure:
        WRITES[operation](mounted)
    assert failure.value.errno == errno.EROFS
    assert (mounted / "README.md").read_bytes() == b"hello\nworld\n"


def test_statfs_and_mount_table(image: Path, mounted: Path) -> None:
    vfs = os.statvfs(mounted)
    assert vfs.f_bsize * vfs.f_blocks >= image.stat().st_size and vfs.f_bfree == 0
    line = next(line for line in Path("/proc/mounts").read_text().splitlines() if f" {mounted} " in line)
    source, _, kind, options = line.split()[:4]
    assert (source, kind) == (str(image), "fuse.docteur")
    assert options.split(",")[0] == "ro"


def test_foreground_mount_stops_when_unmounted(image: Path, tmp_path: Path) -> None:
    mountpoint = tmp_path / "fg"
    mountpoint.mkdir()
    server = subprocess.Popen([BIN / "docteur", "mount", "-f", str(image), str(mountpoint)])
    try:
        deadline = time.monotonic() + 20
        while not os.path.ismount(mountpoint):
            assert server.poll() is None and time.monotonic() < deadline, "the mount never appeared"
            time.sleep(0.05)
        assert (mountpoint / "docs/a.md").read_bytes() == b"# A\n"
        _unmount(mountpoint)
        assert server.wait(timeout=20) == 0
    finally:
        if server.poll() is None:
            server.kill()
            _unmount(mountpoint)


def test_bad_input_is_one_line(image: Path, tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.img"
    corrupt.write_bytes(b"\0" * 4096)
    cases = {
        (tmp_path / "missing.img", tmp_path): "missing.img: No such file or directory",
        (image, tmp_path / "nowhere"): "nowhere: mountpoint is not an existing directory",
        (corrupt, tmp_path): "corrupt.img",
    }
    for (img, mountpoint), expected in cases.items():
        done = run_cli("docteur-mount", img, mountpoint)
        err = done.stderr.decode()
        assert done.returncode == 1 and err.count("\n") == 1 and "Traceback" not in err, err
        assert err.startswith("docteur-mount: error: ") and expected in err
    done = run_cli("docteur-mount", "-o", "rw", image, tmp_path)
    assert done.returncode == 1 and b"always read-only" in done.stderr and not os.path.ismount(tmp_path)
