"""9P: the guest kernel mounts the image, served by docteur-serve on the host (mount mode) or by docteur in
the guest from its own disk (disk mode, zlib and zstd images); the guest as the server (serve mode)."""

from __future__ import annotations

import hashlib
import os
import signal
import stat
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from ninep.client import Client
from trees import DIR, LINK, Tree

from unikernel import guest, host
from unikernel.paths import REPO

pytestmark = pytest.mark.usefixtures("guest_build")

# find, stat, readlink and sha256sum of everything under /mnt, one section each. `stat -c` prints the raw
# mode in hex (%f), the size and the name; names are bytes and may not be UTF-8.
SURVEY = r"""cd /mnt
find . | sort
echo @@
find . -exec stat -c '%f %s %n' {} +
echo @@
find . -type l | while read -r l; do printf '%s -> %s\n' "$l" "$(readlink "$l")"; done
echo @@
find . -type f -exec sha256sum {} +
"""
WRITES = [
    "touch /mnt/new",
    "echo x >/mnt/README.md",
    "mkdir /mnt/dir",
    "rm /mnt/README.md",
    "mv /mnt/README.md /mnt/moved",
    "ln -s README.md /mnt/newlink",
    "chmod 777 /mnt/README.md",
]


@pytest.fixture(scope="module")
def served(image: Path) -> Iterator[Path]:
    with host.docteur_serve(image) as sock:
        yield sock


RunCmd = Callable[[str], guest.Run]


@pytest.fixture(scope="module", params=["mount", "disk", "disk-zstd"])
def run_cmd(request: pytest.FixtureRequest, served: Path) -> RunCmd:
    """CMD run in a guest against /mnt, in each of the modes that mount an image there."""
    if request.param == "mount":
        return lambda cmd: guest.run_mounted(served, cmd)
    image = request.getfixturevalue("image" if request.param == "disk" else "zstd_image")
    return lambda cmd: guest.run_disk(image, cmd)


def lines(section: bytes) -> list[bytes]:
    return section.strip(b"\n").split(b"\n")


def unix_mode(mode: int) -> int:
    """The mode a Git tree entry is served with: symlinks 0777, directories 0755, files as committed."""
    return {LINK: stat.S_IFLNK | 0o777, DIR: stat.S_IFDIR | 0o755}.get(mode, mode)


@pytest.fixture(scope="module")
def survey(run_cmd: RunCmd) -> list[bytes]:
    rc, out = run_cmd(SURVEY)
    assert rc == 0
    sections = out.split(b"@@\n")
    assert len(sections) == 4
    return sections


def test_find_lists_the_source(survey: list[bytes], source_tree: Tree) -> None:
    assert lines(survey[0]) == sorted([b".", *(b"./" + p for p in source_tree)])


def test_stat_modes_and_sizes_match(survey: list[bytes], source_tree: Tree) -> None:
    seen = {}
    for line in lines(survey[1]):
        mode, size, name = line.split(b" ", 2)
        seen[name] = (int(mode, 16), int(size))
    assert seen.pop(b".")[0] == stat.S_IFDIR | 0o755
    for path, (mode, content) in source_tree.items():
        got_mode, got_size = seen.pop(b"./" + path)
        assert got_mode == unix_mode(mode), path
        if mode != DIR:
            assert got_size == len(content), path
    assert not seen


def test_readlink_matches(survey: list[bytes], source_tree: Tree) -> None:
    links = {b"./" + p: target for p, (mode, target) in source_tree.items() if mode == LINK}
    assert links
    assert dict(line.split(b" -> ", 1) for line in lines(survey[2])) == links


def test_sha256_of_every_file_matches(survey: list[bytes], source_tree: Tree) -> None:
    files = {b"./" + p: c for p, (mode, c) in source_tree.items() if mode not in (DIR, LINK)}
    sums = dict(reversed(line.split(b"  ", 1)) for line in lines(survey[3]))
    assert sums == {p: hashlib.sha256(c).hexdigest().encode() for p, c in files.items()}


def test_writes_fail_read_only(run_cmd: RunCmd, source_tree: Tree) -> None:
    cmd = "".join(f"{w} && echo changed\n" for w in WRITES) + "sha256sum /mnt/README.md; ls /mnt | wc -l\n"
    run = run_cmd(cmd)
    errors = run.stderr.decode().splitlines()
    assert len(errors) == len(WRITES)
    assert all(e.endswith("Read-only file system") for e in errors), errors
    readme = hashlib.sha256(source_tree[b"README.md"][1]).hexdigest()
    top = sum(b"/" not in p for p in source_tree)
    assert run.stdout.decode().split() == [readme, "/mnt/README.md", str(top)]


def test_failed_mount_is_reported(served: Path) -> None:
    run = guest.run_mounted(served, "echo mounted", version="9p2000.X")
    assert (run.rc, run.stdout) == (125, b"")
    assert "mount" in run.error


def test_mount_reports_a_server_that_is_gone(tmp_path: Path) -> None:
    with pytest.raises(guest.GuestError, match="no 9P server"):
        guest.run_mounted(tmp_path / "absent.sock", "true")


@pytest.fixture(scope="module")
def guest_server(image: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    sock = tmp_path_factory.mktemp("serve") / "guest.sock"
    with guest.serving(image, sock):
        yield sock


def test_host_client_reads_through_the_guest_server(guest_server: Path, source_tree: Tree) -> None:
    # The guest boots while we connect: the first reply arrives once its server runs.
    with Client.session(str(guest_server)) as client:
        for path, (mode, content) in source_tree.items():
            if mode != DIR:  # a symlink reads as its target
                assert client.read(path) == content, path


def test_a_guest_mounts_what_a_guest_serves(guest_server: Path, source_tree: Tree) -> None:
    # The kernel's 9P client in one guest, the docteur server in another, a unix socket between them.
    rc, out = guest.run_mounted(guest_server, "sha256sum /mnt/big.bin; cat /mnt/a/b/c/deep.txt")
    assert rc == 0
    digest, _, rest = out.partition(b"  /mnt/big.bin\n")
    assert digest.decode() == hashlib.sha256(source_tree[b"big.bin"][1]).hexdigest()
    assert rest == source_tree[b"a/b/c/deep.txt"][1]


def make(*args: str, **kw: object) -> subprocess.Popen[bytes]:
    # -s: with -C, make itself would print "Entering directory" on stdout.
    argv = ["make", "-s", "-C", str(REPO / "unikernel"), *args]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)  # type: ignore[call-overload]


def test_make_mount_prints_the_command_output(image: Path, source_tree: Tree) -> None:
    out, err = make("mount", f"IMAGE={image}", "CMD=cat /mnt/bytes.bin; ls /mnt/nope").communicate(
        timeout=300
    )
    assert out == source_tree[b"bytes.bin"][1]
    assert b"ls: /mnt/nope: No such file or directory" in err


def test_make_serve_until_terminated(image: Path, tmp_path: Path, source_tree: Tree) -> None:
    sock = tmp_path / "served.sock"
    # Its own process group: a terminal's Ctrl-C or a SIGTERM reaches make and the harness alike.
    proc = make("serve", f"IMAGE={image}", f"SOCKET={sock}", start_new_session=True)
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            if b"the guest serves" in line:
                break
        with Client.session(str(sock)) as client:
            assert client.read("run.sh") == source_tree[b"run.sh"][1]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
    assert not sock.exists()  # the guest was stopped and its socket removed
