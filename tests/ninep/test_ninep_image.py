"""The server over real images: the tree layout, the datakit layout, and the docteur-serve command."""

from __future__ import annotations

import os
import pty
import re
import signal
import socket
import stat
import subprocess
import sys
import termios
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest
from trees import DIR, EXEC, LINK, read_fs_tree

import docteur
from docteur.ninep.contents import Contents
from docteur.ninep.listen import DEFAULT_LISTEN, parse_listen
from docteur.ninep.tree import TreeFS
from docteur.ninep.wire import Message, MsgType

from .client import Client, Fds
from .conftest import Served
from .sample import COMMIT_TIME, Sample

Serve = Callable[..., AbstractContextManager[Served]]
BIN = Path(sys.executable).parent


def _unix_mode(mode: int) -> int:
    return {
        DIR: stat.S_IFDIR | 0o755,
        EXEC: stat.S_IFREG | 0o755,
        LINK: stat.S_IFLNK | 0o777,
    }.get(mode, stat.S_IFREG | 0o644)


def walk_all(c: Client, path: bytes = b"") -> dict[bytes, Message]:
    """Every entry below path, through the server: relative path -> Rgetattr."""
    found: dict[bytes, Message] = {}
    for name, _, kind in c.listdir(path):
        if name in (b".", b".."):
            continue
        rel = path + b"/" + name if path else name
        found[rel] = c.getattr(rel)
        if kind == 4:
            found |= walk_all(c, rel)
    return found


@pytest.fixture
def tree_served(sample: Sample, serve: Serve) -> Iterator[Served]:
    with docteur.open(sample.image) as img, serve(TreeFS(img)) as s:
        yield s


def test_every_entry_matches_the_source(tree_served: Served, sample: Sample) -> None:
    with tree_served.client(msize=1 << 20) as c:
        seen = walk_all(c)
        source = read_fs_tree(sample.source)
        assert set(seen) == set(source)
        for path, (mode, content) in source.items():
            attrs = seen[path]
            assert attrs.num("mode") == _unix_mode(mode), path
            assert attrs.num("mtime_sec") == COMMIT_TIME
            if mode == LINK:
                fid, _ = c.walk(path)
                assert c.rpc(MsgType.TREADLINK, fid=fid).text("target") == content
                c.clunk(fid)
            elif mode != DIR:
                assert attrs.num("size") == len(content)
                assert c.read(path) == content, path


@pytest.mark.parametrize("version", ["9P2000.u", "9P2000"])
def test_classic_dialects_read_the_same_tree(tree_served: Served, sample: Sample, version: str) -> None:
    with tree_served.client(version, msize=8192) as c:
        assert sorted(name for name, _, _ in c.listdir("many")) == sorted(
            p.rpartition(b"/")[2] for p in sample.tree if p.startswith(b"many/")
        )
        assert c.read("big.bin") == sample.tree[b"big.bin"][1]
        assert c.stat("docs/up").extension == (b"../README.md" if version == "9P2000.u" else b"")


def test_open_files_share_one_copy_within_the_budget(sample: Sample, serve: Serve) -> None:
    big = sample.tree[b"big.bin"][1]
    contents = Contents(budget=len(big) + 100)  # room for big.bin and README.md only
    with (
        docteur.open(sample.image) as img,
        serve(TreeFS(img, contents=contents)) as s,
        s.client(msize=1 << 20) as a,
        s.client() as b,
    ):
        fids = [c.walk("big.bin")[0] for c in (a, b)]
        for c, fid in zip((a, b), fids, strict=True):
            c.open(fid)
        assert contents.held == len(big)  # two fids, one copy
        # Past the budget, a file still reads right: each read fetches it again.
        other, _ = a.walk("docs/guide/intro.txt")
        a.open(other)
        assert contents.held == len(big)
        assert a.rpc(MsgType.TREAD, fid=other, offset=6, count=12).text("data") == b"intro\nintro\n"
        assert b"".join(a.chunks(fids[0])) == big
        for c, fid in zip((a, b), fids, strict=True):
            c.clunk(fid)
        assert contents.held == 0  # the last clunk let it go
        assert a.read("README.md") == b"# sample\n"


def test_qids_survive_restarts_and_tell_paths_apart(sample: Sample, serve: Serve) -> None:
    qids = []
    for _ in range(2):
        with docteur.open(sample.image) as img, serve(TreeFS(img)) as s, s.client() as c:
            qids.append({p: c.getattr(p).args["qid"] for p in (b"", b"docs", b"README.md", b"docs/same.md")})
    assert qids[0] == qids[1]
    assert qids[0][b"README.md"] != qids[0][b"docs/same.md"]  # one blob, two files


def test_statfs_describes_the_image(tree_served: Served, sample: Sample) -> None:
    with tree_served.client() as c, docteur.open(sample.image) as img:
        fs = c.rpc(MsgType.TSTATFS, fid=0)
        assert fs.num("blocks") * fs.num("bsize") >= sample.image.stat().st_size - fs.num("bsize")
        assert fs.num("files") == len(img.objects)
        assert fs.num("fsid") == int(img.commit[:16], 16)


# -- the command --------------------------------------------------------------------------------------


@contextmanager
def command(*args: str | Path, **popen: object) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen([str(BIN / "docteur-serve"), *map(str, args)], stderr=subprocess.PIPE, **popen)  # type: ignore[call-overload]
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def _wait_for(path: Path, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while not path.exists():
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        assert time.monotonic() < deadline, "no socket"
        time.sleep(0.02)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_command_serves_unix_and_stops_cleanly(sample: Sample, tmp_path: Path, sig: int) -> None:
    sock = tmp_path / "d.sock"
    with command(sample.image, "--listen", f"unix:{sock}") as proc:
        _wait_for(sock, proc)
        with Client.session(str(sock)) as c:
            assert c.read("README.md") == b"# sample\n"
            pending = c.send(MsgType.TGETATTR, fid=0, request_mask=0x7FF)
            assert c.recv().tag == pending
            proc.send_signal(sig)
            assert proc.wait(10) == 0
        assert not sock.exists()
        log = proc.stderr.read().decode()  # type: ignore[union-attr]
    assert "connected" in log and "closed after" in log and "Traceback" not in log


def test_command_serves_tcp_on_loopback(sample: Sample) -> None:
    with command(sample.image, "--listen", "tcp:127.0.0.1:0") as proc:
        assert proc.stderr is not None
        line = proc.stderr.readline().decode()
        port = int(re.search(r"serving on tcp:127\.0\.0\.1:(\d+)", line).group(1))  # type: ignore[union-attr]
        with Client.session(("127.0.0.1", port), "9P2000.u") as c:
            assert c.read("bin/run.sh") == b"#!/bin/sh\necho run\n"
        proc.terminate()
        assert proc.wait(10) == 0


def test_the_default_listen_address_is_loopback() -> None:
    assert parse_listen(DEFAULT_LISTEN).host == "127.0.0.1"


@pytest.mark.parametrize("kind", ["socketpair", "pipes", "pty"])
def test_command_serves_one_session_on_stdio(sample: Sample, kind: str) -> None:
    channel: socket.socket | Fds
    if kind == "socketpair":  # socat EXEC and inetd hand over one socket as stdin and stdout
        channel, theirs = socket.socketpair()
        stdin = stdout = theirs.fileno()
        mine: list[int] = []
    elif kind == "pipes":
        stdin, to_server = os.pipe()
        from_server, stdout = os.pipe()
        channel, mine = Fds(from_server, to_server), [stdin, stdout]
    else:  # a tty, as a virtconsole in a guest: without raw mode it would echo and mangle the bytes
        master, slave = pty.openpty()
        stdin = stdout = slave
        channel, mine = Fds(master, master), [slave]
    with command(sample.image, "--listen", "stdio", stdin=stdin, stdout=stdout) as proc:
        for fd in mine:
            os.close(fd)
        if kind == "socketpair":
            theirs.close()
        if kind == "pty":
            _await_raw_mode(master, proc)
        with Client.session(channel, msize=1 << 20) as c:
            assert c.read("big.bin") == sample.tree[b"big.bin"][1]
            assert c.read(b"caf\xe9.txt") == b"not UTF-8\n"
            if kind == "pty":  # the session ends when the server is told to stop
                proc.terminate()
            else:
                channel.close()  # end of file: the session, and the server, end
            assert proc.wait(10) == 0


def test_deadlines_are_options_and_spare_the_stdio_session(sample: Sample, tmp_path: Path) -> None:
    sock = tmp_path / "d.sock"
    quick = ("--version-timeout", "0.3", "--idle-timeout", "0.3", "--frame-timeout", "0.3")
    with command(sample.image, "--listen", f"unix:{sock}", *quick) as proc:
        _wait_for(sock, proc)
        silent = Client(str(sock), timeout=10)
        assert silent.closed_by_server()
        proc.terminate()
        assert proc.wait(10) == 0
        assert b"closed: no Tversion in 0.3 s" in proc.stderr.read()  # type: ignore[union-attr]
    # stdio: one session that nobody else waits for (a guest's server may wait long for its host).
    channel, theirs = socket.socketpair()
    with command(
        sample.image, "--listen", "stdio", *quick, stdin=theirs.fileno(), stdout=theirs.fileno()
    ) as proc:
        theirs.close()
        time.sleep(1)  # past the Tversion deadline
        with Client(channel) as c:
            c.version()
            time.sleep(1)  # past the idle deadline, holding no fid
            c.attach()
            assert c.read(b"caf\xe9.txt") == b"not UTF-8\n"
        assert proc.wait(10) == 0


def _await_raw_mode(fd: int, proc: subprocess.Popen[bytes]) -> None:
    """Wait until the server has made its tty raw (no echo, no line editing)."""
    deadline = time.monotonic() + 20
    while termios.tcgetattr(fd)[3] & (termios.ECHO | termios.ICANON):
        assert proc.poll() is None and time.monotonic() < deadline, "the server never set raw mode"
        time.sleep(0.02)


def test_bad_input_gets_one_line(sample: Sample, tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.img"
    corrupt.write_bytes(os.urandom(4096))
    live = tmp_path / "live.sock"
    listening = socket.socket(socket.AF_UNIX)
    listening.bind(str(live))
    listening.listen()
    not_socket = tmp_path / "file"
    not_socket.write_text("x")
    cases = [
        ([tmp_path / "missing.img"], 1, "missing.img"),
        ([corrupt], 1, ""),
        ([sample.image, "--listen", "udp:1"], 2, "bad listen address"),
        ([sample.image, "--layout", "zip"], 2, "layout"),
        ([sample.image, "--msize", "100"], 2, "msize"),
        ([sample.image, "--listen", f"unix:{live}"], 1, "another server"),
        ([sample.image, "--listen", f"unix:{not_socket}"], 1, "not a socket"),
    ]
    for args, code, words in cases:
        run = subprocess.run([BIN / "docteur-serve", *map(str, args)], capture_output=True, timeout=30)
        err = run.stderr.decode()
        assert run.returncode == code, (args, err)
        assert len(err.strip().splitlines()) == 1 and words in err and "Traceback" not in err, (args, err)
    listening.close()
    assert not_socket.read_text() == "x"
