"""Where the server listens (tcp, unix socket, or one session on stdin/stdout) and how it stops.

The stdio listener also serves a tty, such as a virtconsole inside a QEMU guest: the tty is put in raw
mode first, or it would echo the client's bytes back and translate newlines.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import stat
import termios
import tty
from collections.abc import Iterator
from dataclasses import dataclass

from docteur.ninep.server import Connection, Server

log = logging.getLogger("docteur.ninep")

DEFAULT_LISTEN = "tcp:127.0.0.1:5640"


@dataclass(frozen=True)
class Listen:
    kind: str  # "tcp", "unix" or "stdio"
    host: str = ""
    port: int = 0
    path: str = ""

    def __str__(self) -> str:
        if self.kind == "tcp":
            host = f"[{self.host}]" if ":" in self.host else self.host
            return f"tcp:{host}:{self.port}"
        return f"unix:{self.path}" if self.kind == "unix" else "stdio"


def parse_listen(spec: str) -> Listen:
    """'tcp:HOST:PORT', 'unix:PATH' or 'stdio'; ValueError with a one-line reason otherwise."""
    kind, _, rest = spec.partition(":")
    if spec == "stdio":
        return Listen("stdio")
    if kind == "unix" and rest:
        return Listen("unix", path=rest)
    if kind == "tcp":
        host, _, port = rest.rpartition(":")
        host = host.removeprefix("[").removesuffix("]")
        if host and port.isdigit() and 0 <= int(port) < 65536:
            return Listen("tcp", host=host, port=int(port))
    raise ValueError(f"bad listen address {spec!r}: use tcp:HOST:PORT, unix:PATH or stdio")


async def serve(server: Server, where: Listen) -> None:
    """Serve until SIGTERM or SIGINT (or, for stdio, until the session ends), then close cleanly."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        if where.kind == "stdio":
            session = asyncio.create_task(_serve_stdio(server))
            stopping = asyncio.create_task(stop.wait())
            done, _ = await asyncio.wait([session, stopping], return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if session in done:
                session.result()  # its errors are the command's
        else:
            await _listen(server, where, stop)
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await server.close()


async def _listen(server: Server, where: Listen, stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    if where.kind == "tcp":
        listener = await loop.create_server(server.protocol, where.host, where.port)
    else:
        _remove_stale_socket(where.path)
        listener = await loop.create_unix_server(server.protocol, sock=_listening_socket(where.path))
    for sock in listener.sockets:
        log.info("serving on %s", _address(where, sock))
    try:
        async with listener:
            await stop.wait()
            log.info("stopping")
    finally:
        if where.kind == "unix":
            with contextlib.suppress(FileNotFoundError):
                os.unlink(where.path)


def _address(where: Listen, sock: socket.socket) -> Listen:
    """The address really bound (tcp port 0 picks a free port)."""
    if where.kind != "tcp":
        return where
    host, port = sock.getsockname()[:2]
    return Listen("tcp", host=host, port=port)


def _listening_socket(path: str) -> socket.socket:
    """A unix socket that appears at ``path`` only once it listens: whoever waits for the path to exist
    (a test, QEMU, a script) can connect at once, instead of being refused between bind and listen."""
    sock = socket.socket(socket.AF_UNIX)
    try:
        scratch = os.path.join(os.path.dirname(path) or ".", f".{os.getpid()}-{os.urandom(4).hex()}.sock")
        try:
            sock.bind(scratch)
        except OSError:  # the longer name does not fit in a socket address: bind in place
            sock.bind(path)
            sock.listen(100)
            return sock
        try:
            sock.listen(100)
            os.link(scratch, path)  # unlike rename, never replaces a socket another server just made
        finally:
            os.unlink(scratch)
    except FileExistsError:
        sock.close()
        raise FileExistsError(f"{path}: another server is listening there") from None
    except BaseException:
        sock.close()
        raise
    return sock


def _remove_stale_socket(path: str) -> None:
    """A socket left by a server that died is replaced; a live one, or any other file, is an error."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise FileExistsError(f"{path} exists and is not a socket")
    with socket.socket(socket.AF_UNIX) as probe:
        try:
            probe.connect(path)
        except ConnectionRefusedError:
            os.unlink(path)
            return
    raise FileExistsError(f"{path}: another server is listening there")


async def _serve_stdio(server: Server) -> None:
    with _raw_ttys(0, 1):
        conn = await _connect_stdio(server)
        await conn.closed.wait()


async def _connect_stdio(server: Server) -> Connection:
    loop = asyncio.get_running_loop()
    conn = server.protocol(peer="stdio", timed=False)
    if _same_socket(0, 1):
        # One socket both ways (socat EXEC, inetd): a duplex transport. A write-pipe transport would take
        # the client's incoming bytes for a hang-up.
        await loop.connect_accepted_socket(lambda: conn, socket.socket(fileno=os.dup(0)))
        return conn
    # Replies must have somewhere to go before the first request can arrive.
    out, _ = await loop.connect_write_pipe(lambda: _Output(conn), os.fdopen(os.dup(1), "wb", buffering=0))
    conn.out = out
    await loop.connect_read_pipe(lambda: conn, os.fdopen(os.dup(0), "rb", buffering=0))
    return conn


class _Output(asyncio.Protocol):
    """The write side of a stdio session: flow control for the connection, and its end when stdout goes."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def pause_writing(self) -> None:
        self.conn.pause_writing()

    def resume_writing(self) -> None:
        self.conn.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self.conn.close()


def _same_socket(a: int, b: int) -> bool:
    sa, sb = os.fstat(a), os.fstat(b)
    return stat.S_ISSOCK(sa.st_mode) and (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


@contextlib.contextmanager
def _raw_ttys(*fds: int) -> Iterator[None]:
    """Raw mode on each tty among ``fds`` for the duration, restored after."""
    saved = []
    for fd in fds:
        if os.isatty(fd):
            saved.append((fd, termios.tcgetattr(fd)))
            tty.setraw(fd, termios.TCSANOW)  # not TCSAFLUSH: a client may have spoken already
    try:
        yield
    finally:
        for fd, attrs in saved:
            with contextlib.suppress(termios.error):
                termios.tcsetattr(fd, termios.TCSADRAIN, attrs)
