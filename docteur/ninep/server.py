"""The asyncio 9P server: connections, framing, flow control, limits, and where requests run.

A connection is an asyncio Protocol. Requests whose filesystem calls are small are answered as soon as
their frame arrives; the others go on in a task with their calls in worker threads, so a connection may
have many outstanding, a big read never stalls the event loop, and a slow client never blocks others.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from docteur.ninep import wire
from docteur.ninep.fs import ReadOnlyFS
from docteur.ninep.session import Call, Session, Work, errno_of, error_reply, negotiate
from docteur.ninep.wire import Dialect, Message, MsgType

log = logging.getLogger("docteur.ninep")

MIN_MSIZE = 4096  # Linux refuses less, and a stat record must fit
BULK = (MsgType.TREAD, MsgType.TREADDIR)  # the requests whose replies may be msize long


@dataclass(frozen=True)
class Limits:
    """What one server accepts; the defaults suit the Linux client walking large trees."""

    max_msize: int = 1 << 20
    max_fids: int = 1 << 18  # Linux keeps a fid per cached dentry
    max_total_fids: int = 1 << 19  # over all connections: ~250 bytes each, so ~130 MiB at most
    max_connections: int = 64
    max_outstanding: int = 64  # requests in flight per connection
    max_bulk: int = 2  # reads (replies up to msize) built or waiting for the client, per connection


class Server:
    """Serves one read-only filesystem to any number of connections."""

    def __init__(
        self, fs: ReadOnlyFS, *, uid: int = 0, gid: int = 0, limits: Limits | None = None, workers: int = 4
    ) -> None:
        self.fs = fs
        self.uid = uid
        self.gid = gid
        self.limits = limits or Limits()
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="docteur-9p")
        self.connections: set[Connection] = set()

    def fids_held(self) -> int:
        """Fids of every connection: many connections must not multiply what one may hold."""
        return sum(len(conn.session.fids) for conn in self.connections)

    def protocol(self, peer: str = "") -> Connection:
        """A protocol for one connection (the factory for loop.create_server and its kin)."""
        return Connection(self, peer)

    async def close(self) -> None:
        """Close every connection and stop the worker threads."""
        for conn in list(self.connections):
            conn.close()
        for conn in list(self.connections):
            await conn.closed.wait()
        self.pool.shutdown(wait=False, cancel_futures=True)


def _peer_name(transport: asyncio.BaseTransport) -> str:
    peer = transport.get_extra_info("peername")
    if isinstance(peer, tuple):
        return f"{peer[0]}:{peer[1]}"
    return f"unix:{transport.get_extra_info('sockname') or '?'}"


class Connection(asyncio.Protocol):
    """One client connection: frames in, replies out, and the requests in flight."""

    def __init__(self, server: Server, peer: str = "") -> None:
        limits = server.limits
        self.server = server
        self.limits = limits
        self.peer = peer
        self.session = Session(
            server.fs,
            uid=server.uid,
            gid=server.gid,
            max_fids=limits.max_fids,
            msize=limits.max_msize,
            fids_held=server.fids_held,
            max_total_fids=limits.max_total_fids,
        )
        self.transport: asyncio.BaseTransport | None = None  # where frames come from
        self.out: asyncio.WriteTransport | None = None  # where replies go (the same, but for stdio)
        self.buffer = bytearray()
        self.pending: dict[int, asyncio.Task[None]] = {}
        self.bulk = asyncio.Semaphore(limits.max_bulk)
        self.drained = asyncio.Event()
        self.drained.set()
        self.reading_paused = False
        self.requests = 0
        self.closed = asyncio.Event()
        self.accepted = False

    # -- the transport's side -----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        if self.out is None:
            self.out = transport  # type: ignore[assignment]
        self.peer = self.peer or _peer_name(transport)
        if len(self.server.connections) >= self.limits.max_connections:
            log.warning("%s: refused, already %d connections", self.peer, len(self.server.connections))
            transport.close()
            return
        self.accepted = True
        self.server.connections.add(self)
        log.info("%s: connected", self.peer)

    def connection_lost(self, exc: Exception | None) -> None:
        self._abort_pending()
        if self.out is not None and self.out is not self.transport:
            self.out.close()
        if self.accepted:
            self.server.connections.discard(self)
            log.info("%s: closed after %d requests", self.peer, self.requests)
        self.closed.set()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._consume()

    def pause_writing(self) -> None:
        self.drained.clear()
        self._flow()

    def resume_writing(self) -> None:
        self.drained.set()
        self._consume()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    # -- frames in ----------------------------------------------------------------------------------

    def _busy(self) -> bool:
        """Read no more frames while the client leaves our replies unread, or too many are in flight:
        what a connection buffers stays bounded."""
        closing = self.transport is None or self.transport.is_closing()
        return closing or not self.drained.is_set() or len(self.pending) >= self.limits.max_outstanding

    def _consume(self) -> None:
        buf, pos = self.buffer, 0
        try:
            while not self._busy() and len(buf) - pos >= 4:
                size = int.from_bytes(buf[pos : pos + 4], "little")
                if not wire.HEADER_SIZE <= size <= self.session.msize:
                    log.warning(
                        "%s: bad frame size %d (msize %d): closing", self.peer, size, self.session.msize
                    )
                    self.close()
                    return
                if len(buf) - pos < size:
                    break
                frame = bytes(buf[pos : pos + size])
                pos += size
                self.requests += 1
                if not self.dispatch(frame):
                    self.close()
                    return
        finally:
            del buf[:pos]
        self._flow()

    def _flow(self) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        busy = self._busy()
        if busy != self.reading_paused:
            self.reading_paused = busy
            (transport.pause_reading if busy else transport.resume_reading)()  # type: ignore[attr-defined]

    def dispatch(self, frame: bytes) -> bool:
        """Serve one frame; False when the connection must close."""
        try:
            msg = wire.decode(frame, self.session.dialect or Dialect.P9)
        except wire.WireError as exc:
            log.warning("%s: malformed message: %s", self.peer, exc)
            if exc.tag is None:
                return False
            self.send(error_reply(self.session.dialect, exc.tag, exc.errno))
            return True
        log.debug("%s: %r", self.peer, msg)
        if msg.type is MsgType.TVERSION:
            self.version(msg)
        elif msg.type is MsgType.TFLUSH and self.session.dialect is not None:
            self.flush(msg)
        elif msg.tag in self.pending:
            log.warning("%s: tag %d reused while in flight: closing", self.peer, msg.tag)
            return False
        else:
            self.start(msg)
        return True

    def send(self, reply: Message) -> None:
        log.debug("%s: %r", self.peer, reply)
        if self.out is not None and not self.out.is_closing():
            self.out.write(wire.encode(reply, self.session.dialect or Dialect.P9))

    # -- where requests run -------------------------------------------------------------------------

    def start(self, msg: Message) -> None:
        """Answer a request right away when nothing in it must wait; else go on in a task."""
        try:
            result = self.session.request(msg)
            if not isinstance(result, Message):
                step = self._advance(result)
                if isinstance(step, Call):
                    self.pending[msg.tag] = asyncio.create_task(self.finish(msg, result, step))
                    return
                result = step
        except Exception as exc:
            result = self._failure(msg, exc)
        self.send(result)

    def _advance(self, work: Work, value: object = None, error: Exception | None = None) -> Message | Call:
        """Run a handler on, doing its filesystem calls here while they are small and the filesystem is
        free (a trip to a worker thread costs more than most calls); stop at the first one that is not."""
        lock = self.server.fs.lock
        while True:
            try:
                call = work.throw(error) if error is not None else work.send(value)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
            if call.heavy or not lock.acquire(blocking=False):
                return call
            value, error = None, None
            try:
                value = call.fn(*call.args)
            except Exception as exc:
                error = exc
            finally:
                lock.release()

    async def finish(self, msg: Message, work: Work, call: Call) -> None:
        """Go on with a request in worker threads; the loop serves others meanwhile."""
        loop = asyncio.get_running_loop()
        try:
            # Outstanding reads whose replies the client never takes would each hold up to msize bytes:
            # a bulk reply keeps its slot until the client has drained it.
            async with self.bulk if msg.type in BULK else contextlib.nullcontext():
                try:
                    step: Message | Call = call
                    while isinstance(step, Call):
                        value, error = None, None
                        try:
                            value = await loop.run_in_executor(self.server.pool, step.fn, *step.args)
                        except asyncio.CancelledError:
                            raise
                        except Exception as exc:
                            error = exc
                        step = self._advance(work, value, error)
                    reply = step
                except asyncio.CancelledError:
                    work.close()
                    raise  # flushed: no reply
                except Exception as exc:
                    reply = self._failure(msg, exc)
                # No await from here to the write: a Tflush either cancelled us above or finds us answered.
                self.pending.pop(msg.tag, None)
                self.send(reply)
                if msg.type in BULK:
                    await self.drained.wait()
        finally:
            if self.pending.get(msg.tag) is asyncio.current_task():
                del self.pending[msg.tag]  # it failed before answering
            self._consume()  # reading may resume

    def _failure(self, msg: Message, exc: Exception) -> Message:
        code = errno_of(exc)
        if code == errno.EIO:
            log.error("%s: %s failed: %s: %s", self.peer, msg.type.name, type(exc).__name__, exc)
            log.debug("%s: traceback", self.peer, exc_info=exc)
        else:
            log.debug("%s: %s: %s", self.peer, msg.type.name, os.strerror(code))
        return error_reply(self.session.dialect, msg.tag, code)

    def _abort_pending(self) -> None:
        for task in self.pending.values():
            task.cancel()
        self.pending.clear()

    # -- session control ----------------------------------------------------------------------------

    def version(self, msg: Message) -> None:
        self._abort_pending()  # Tversion ends the session: outstanding requests get no reply
        dialect = negotiate(msg.text("version"))
        msize = min(msg.num("msize"), self.limits.max_msize)
        if dialect is None or msize < MIN_MSIZE:
            self.session.reset(None, self.limits.max_msize)
            reply = Message(MsgType.RVERSION, msg.tag, msize=msize, version=b"unknown")
        else:
            self.session.reset(dialect, msize)
            reply = Message(MsgType.RVERSION, msg.tag, msize=msize, version=dialect.value.encode())
            log.info("%s: %s, msize %d", self.peer, dialect.value, msize)
        self.send(reply)

    def flush(self, msg: Message) -> None:
        task = self.pending.pop(msg.num("oldtag"), None)
        if task is not None:
            task.cancel()
        self.send(Message(MsgType.RFLUSH, msg.tag))
