"""Servers for the tests: in this process (a thread running the event loop) on a unix socket."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from docteur.ninep.fs import ReadOnlyFS
from docteur.ninep.server import Server

from .client import Client
from .memfs import Exec, Link, MemFS, Spec
from .sample import sample  # noqa: F401 - a fixture for every test here

BIG = bytes(range(256)) * 1200  # 300 KiB: several reads at any msize

SPEC: Spec = {
    "README.md": b"# hello\n",
    "empty": b"",
    "big.bin": BIG,
    "run.sh": Exec(b"#!/bin/sh\necho hi\n"),
    "link": Link(b"README.md"),
    "dangling": Link(b"../nowhere"),
    "docs": {"a.md": b"alpha\n", "same.md": b"# hello\n", "deep": {"x": b"x"}},
    "many": {f"file-{i:04d}-{'n' * (i % 40)}": str(i).encode() for i in range(400)},
    "caf\udce9": b"latin-1 name\n",  # the bytes b"caf\xe9", not UTF-8
}


@dataclass
class Served:
    path: str
    server: Server
    fs: ReadOnlyFS

    def client(self, version: str = "9P2000.L", msize: int = 65536) -> Client:
        return Client.session(self.path, version, msize)


def wait_for(condition: Callable[[], bool], what: str) -> None:
    """Until the server (in this process) reaches a state; fails after 10 s."""
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


@contextmanager
def running(fs: ReadOnlyFS, path: Path, **options: object) -> Iterator[Served]:
    """A server on a unix socket, its event loop in a thread, until the block ends."""
    server = Server(fs, **options)  # type: ignore[arg-type]
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    ready = threading.Event()

    async def main() -> None:
        listener = await asyncio.get_running_loop().create_unix_server(server.protocol, str(path))
        ready.set()
        async with listener:
            await stop.wait()
        await server.close()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    assert ready.wait(10), "server did not start"
    try:
        yield Served(str(path), server, fs)
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()


@pytest.fixture
def memfs() -> MemFS:
    return MemFS(SPEC)


@pytest.fixture
def served(memfs: MemFS, tmp_path: Path) -> Iterator[Served]:
    with running(memfs, tmp_path / "9p.sock") as s:
        yield s


@pytest.fixture
def serve(tmp_path: Path) -> Callable[..., object]:
    """serve(fs, **options) -> a context manager yielding Served."""
    counter = iter(range(1000))

    def start(fs: ReadOnlyFS, **options: object) -> object:
        return running(fs, tmp_path / f"s{next(counter)}.sock", **options)

    return start
