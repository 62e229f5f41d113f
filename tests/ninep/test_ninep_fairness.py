"""Deadlines, eviction at the connection limit and fair worker threads, against the real server over unix
sockets: idle and slow clients cannot hold places, greedy ones cannot starve the others."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager

import pytest

from docteur.ninep import wire
from docteur.ninep.server import Limits
from docteur.ninep.wire import Dialect, Message, MsgType
from docteur.ninep.workers import Workers

from .client import Client
from .conftest import BIG, Served, wait_for
from .memfs import MemFS

Serve = Callable[..., AbstractContextManager[Served]]


def _messages(caplog: pytest.LogCaptureFixture, words: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if words in r.getMessage()]


# -- deadlines ----------------------------------------------------------------------------------------


def test_a_connection_that_never_finishes_tversion_is_closed(serve: Serve, memfs: MemFS) -> None:
    with serve(memfs, limits=Limits(version_timeout=0.3)) as s:
        silent = Client(s.path, timeout=10)
        unknown = Client(s.path, timeout=10)
        assert unknown.version("9P1999").text("version") == b"unknown"  # answered, but no session
        with s.client() as good:
            assert silent.closed_by_server() and unknown.closed_by_server()
            time.sleep(0.5)  # past the deadline it met
            assert good.read("README.md") == b"# hello\n"


def test_a_frame_dribbled_a_byte_at_a_time_closes_the_connection(serve: Serve, memfs: MemFS) -> None:
    frame = wire.encode(Message(MsgType.TGETATTR, 9, fid=0, request_mask=0x7FF), Dialect.L)
    with serve(memfs, limits=Limits(frame_timeout=0.3)) as s, s.client() as good:
        slow = s.client()
        for byte in frame:  # 19 bytes, 0.1 s each
            with contextlib.suppress(OSError):  # closed under it
                slow.sock.sendall(bytes([byte]))
            time.sleep(0.1)
        assert slow.closed_by_server()
        good.sock.sendall(frame[:5])  # a frame in two parts within the deadline is served
        time.sleep(0.05)
        good.sock.sendall(frame[5:])
        assert good.check(good.recv()).tag == 9


def test_idle_with_no_fid_is_closed_but_a_quiet_mount_is_kept(serve: Serve, memfs: MemFS) -> None:
    with serve(memfs, limits=Limits(idle_timeout=0.3)) as s:
        unattached = Client(s.path, timeout=10)
        unattached.version()
        clunked = s.client()
        clunked.clunk(0)
        with s.client() as mounted:  # holds its root fid
            assert unattached.closed_by_server() and clunked.closed_by_server()
            time.sleep(0.5)
            assert mounted.read("docs/a.md") == b"alpha\n"


# -- the connection limit -----------------------------------------------------------------------------


def test_a_newcomer_takes_the_place_of_the_longest_idle(
    serve: Serve, memfs: MemFS, caplog: pytest.LogCaptureFixture
) -> None:
    with serve(memfs, limits=Limits(max_connections=2)) as s, s.client() as a, s.client() as b:
        assert a.read("README.md") == b"# hello\n"  # b is now the longest idle
        with s.client() as c:
            assert b.closed_by_server()
            assert a.read("README.md") == c.read("README.md") == b"# hello\n"
    (line,) = _messages(caplog, "to make room")  # logged once
    assert "the longest idle" in line


def test_a_connection_holding_no_fid_makes_room_first(
    serve: Serve, memfs: MemFS, caplog: pytest.LogCaptureFixture
) -> None:
    with serve(memfs, limits=Limits(max_connections=2)) as s, s.client() as mounted:
        bare = Client(s.path, timeout=10)
        bare.version()  # newer than the mount, but it has nothing to lose
        with s.client() as c:
            assert bare.closed_by_server()
            assert mounted.read("docs/a.md") == c.read("docs/a.md") == b"alpha\n"
    (line,) = _messages(caplog, "to make room")
    assert "holding no fid" in line


def test_refused_only_when_every_connection_is_being_served(
    serve: Serve, memfs: MemFS, caplog: pytest.LogCaptureFixture
) -> None:
    gate = memfs.gates["big.bin"] = threading.Event()
    with serve(memfs, limits=Limits(max_connections=2)) as s, s.client() as a, s.client() as b:
        tags = []
        for c in (a, b):
            fid, _ = c.walk("big.bin")
            c.open(fid)
            tags.append(c.send(MsgType.TREAD, fid=fid, offset=0, count=100))
        wait_for(lambda: s.server.workers.busy == 2, "both reads in worker threads")
        third = Client(s.path, timeout=10)
        with contextlib.suppress(OSError):
            third.send(MsgType.TVERSION, msize=8192, version=b"9P2000.L")
        assert third.closed_by_server()
        gate.set()
        for c, tag in zip((a, b), tags, strict=True):
            reply = c.recv()
            assert (reply.tag, reply.text("data")) == (tag, BIG[:100])
    assert _messages(caplog, "refused") and not _messages(caplog, "to make room")
    # Closed connections free their places.
    with serve(memfs, limits=Limits(max_connections=1)) as s:
        for _ in range(3):
            with s.client() as c:
                assert c.read("empty") == b""


def test_a_client_gone_with_its_replies_unread_frees_its_place(serve: Serve, memfs: MemFS) -> None:
    with serve(memfs, limits=Limits(max_connections=1)) as s:
        gone = s.client(msize=1 << 20)
        fid, _ = gone.walk("big.bin")
        gone.open(fid)
        for _ in range(10):  # 3 MiB of replies it never reads
            gone.send(MsgType.TREAD, fid=fid, offset=0, count=1 << 20)
        gone.sock.shutdown(socket.SHUT_WR)
        with s.client() as c:  # whether the server has seen it go or not, the place is free
            assert c.read("README.md") == b"# hello\n"
        with contextlib.suppress(ConnectionResetError):  # what it asked for is cut short: then the end
            while gone.sock.recv(1 << 16):
                pass


# -- worker threads -----------------------------------------------------------------------------------


def _flood(client: Client, count: int) -> set[int]:
    """`count` opens of big.bin (each needs a worker thread) sent at once; their tags."""
    fids = [client.walk("big.bin")[0] for _ in range(count)]
    return {client.send(MsgType.TLOPEN, fid=fid, flags=0) for fid in fids}


def _answered(client: Client, tags: set[int]) -> None:
    while tags:
        reply = client.check(client.recv())
        tags.remove(reply.tag)


def test_one_clients_flood_leaves_a_worker_for_the_others(serve: Serve, memfs: MemFS) -> None:
    permits = memfs.open_gates["big.bin"] = threading.Semaphore(0)
    with serve(memfs) as s, s.client() as flood, s.client() as other:
        other.sock.settimeout(10)
        tags = _flood(flood, 40)  # its opens hold worker threads until they get permits
        wait_for(lambda: s.server.workers.busy == s.server.workers.share, "the flood in its threads")
        for _ in range(10):  # directory listings each need a worker thread too
            assert [name for name, _, _ in other.listdir("docs")][2:] == [b"a.md", b"deep", b"same.md"]
        permits.release(40)
        _answered(flood, tags)


def test_threads_go_round_robin_between_connections() -> None:
    """With one thread, calls queued by three connections run in turns, not in the order they came."""
    started: list[str] = []
    done = {name: threading.Event() for name in ("a1", "a2", "a3", "b1", "b2", "c1")}

    def call(name: str) -> str:
        started.append(name)
        assert done[name].wait(10)
        return name

    async def main() -> list[str]:
        workers = Workers(1)
        calls = [asyncio.create_task(workers.run(name[0], call, name)) for name in done]
        for count in range(1, len(done) + 1):
            while len(started) < count:
                await asyncio.sleep(0.005)
            done[started[-1]].set()
        results = await asyncio.gather(*calls)
        workers.shutdown()
        return results

    assert asyncio.run(main()) == list(done)
    assert started == ["a1", "b1", "c1", "a2", "b2", "a3"]
