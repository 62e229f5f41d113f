"""Crowds beside the 9P load: connections that sit idle, connections that dribble, and a newcomer timed.

Each crowd holds raw connections to a docteur-serve on a unix socket and lets go of them when its block
ends. Whatever the server does to them (close them, make room with them) is counted, never an error here.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

from ninep.client import Client, Closed

from docteur.ninep import wire
from docteur.ninep.wire import Dialect, Message, MsgType

VERSION = wire.encode(Message(MsgType.TVERSION, wire.NOTAG, msize=1 << 17, version=b"9P2000.L"), Dialect.L)


@contextlib.contextmanager
def idle(address: str, count: int, *, attached: bool) -> Iterator[list[Client]]:
    """`count` sessions that did Tversion (and Tattach: a mount holding its root fid) and say nothing more."""
    clients = []
    try:
        for _ in range(count):
            client = Client(address, timeout=30)
            clients.append(client)
            client.version("9P2000.L", 1 << 17)
            if attached:
                client.attach()
        yield clients
    finally:
        for client in clients:
            client.close()


def still_open(clients: list[Client]) -> int:
    """How many of these sessions the server still answers."""
    alive = 0
    for client in clients:
        with contextlib.suppress(OSError, Closed):
            client.rpc(MsgType.TCLUNK, fid=0)  # answered even when it fails
            alive += 1
    return alive


@contextlib.contextmanager
def dribbling(address: str, count: int, every: float = 1.0) -> Iterator[None]:
    """`count` connections each sending a Tversion frame one byte every `every` seconds."""
    socks = []
    stop = threading.Event()

    def dribble() -> None:
        for i in range(len(VERSION)):
            for sock in socks:
                with contextlib.suppress(OSError):
                    sock.send(VERSION[i : i + 1])
            if stop.wait(every):
                return

    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_UNIX)
            socks.append(sock)
            sock.connect(address)
        thread = threading.Thread(target=dribble, daemon=True)
        thread.start()
        yield
    finally:
        stop.set()
        for sock in socks:
            sock.close()


def newcomer(address: str, path: bytes) -> float | None:
    """Seconds for a new client to connect, negotiate, attach and read `path`; None if it was refused."""
    start = time.perf_counter()
    try:
        with Client(address, timeout=30) as client:
            client.version("9P2000.L", 1 << 17)
            client.attach()
            client.read(path)
    except (OSError, Closed):
        return None
    return time.perf_counter() - start
