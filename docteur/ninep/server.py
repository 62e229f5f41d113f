"""The asyncio 9P server: connections, framing, flow control, limits, deadlines, and where requests run.

A connection is an asyncio Protocol. Requests whose filesystem calls are small are answered as soon as
their frame arrives; the others go on in a task with their calls in worker threads shared fairly between
connections (workers.py), so a connection may have many outstanding, a big read never stalls the event
loop, and neither a slow client nor a greedy one holds up the others. A connection that does nothing
useful (no Tversion, a frame that never finishes arriving, idle with no fid) is closed when its deadline
passes, and when every place is taken the longest-idle one that is not being served makes room.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import socket
import struct

from docteur.ninep import wire
from docteur.ninep.fs import ReadOnlyFS
from docteur.ninep.limits import Limits
from docteur.ninep.session import Call, Session, Work, advance, error_reply, failure
from docteur.ninep.wire import Dialect, Message, MsgType
from docteur.ninep.workers import Workers

log = logging.getLogger("docteur.ninep")

BULK = (MsgType.TREAD, MsgType.TREADDIR)  # the requests whose replies may be msize long


class Server:
    """Serves one read-only filesystem to any number of connections."""

    def __init__(
        self, fs: ReadOnlyFS, *, uid: int = 0, gid: int = 0, limits: Limits | None = None, workers: int = 4
    ) -> None:
        self.fs = fs
        self.uid = uid
        self.gid = gid
        self.limits = limits or Limits()
        self.workers = Workers(workers)
        self.connections: set[Connection] = set()

    def fids_held(self) -> int:
        """Fids of every connection: many connections must not multiply what one may hold."""
        return sum(len(conn.session.fids) for conn in self.connections)

    def protocol(self, peer: str = "", *, timed: bool = True) -> Connection:
        """A protocol for one connection (the factory for loop.create_server and its kin); ``timed=False``
        for the one session on stdio, which has no deadlines: nobody else waits for its place."""
        return Connection(self, peer, timed=timed)

    def evictable(self) -> Connection | None:
        """The connection to close for a newcomer: none of its requests being served; first one already
        closing (its client gone, its replies unread), then one that holds no fid (it has no session to
        lose), then the longest idle."""
        idle = [conn for conn in self.connections if not conn.in_flight()]
        return min(idle, key=lambda c: (not c.closing(), bool(c.session.fids), c.last_active), default=None)

    async def close(self) -> None:
        """Close every connection (replies not yet sent are dropped) and stop the worker threads."""
        connections = list(self.connections)
        for conn in connections:
            conn.abort()
        for conn in connections:
            await conn.closed.wait()
        self.workers.shutdown()


_serials = itertools.count(1)


def _peer_name(transport: asyncio.BaseTransport) -> str:
    """Who is on the other side: host:port, or for a unix socket a number and the peer's process."""
    peer = transport.get_extra_info("peername")
    if isinstance(peer, tuple):
        return f"{peer[0]}:{peer[1]}"
    name = f"unix#{next(_serials)}"
    sock = transport.get_extra_info("socket")
    try:
        pid, uid, _ = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
    except (AttributeError, OSError):
        return name
    return f"{name} (pid {pid}, uid {uid})"


class Connection(asyncio.Protocol):
    """One client connection: frames in, replies out, and the requests in flight."""

    def __init__(self, server: Server, peer: str = "", *, timed: bool = True) -> None:
        limits = server.limits
        self.server = server
        self.limits = limits
        self.peer = peer
        self.timed = timed
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
        # Deadlines: when each started, and the one timer that watches the nearest of them.
        self.loop = asyncio.get_running_loop()
        self.opened_at = self.last_active = self.loop.time()
        self.versioned = False  # a Tversion was answered with a dialect
        self.frame_started: float | None = None  # the first byte of a frame still arriving
        self.timer: asyncio.TimerHandle | None = None

    # -- the transport's side -----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        if self.out is None:
            self.out = transport  # type: ignore[assignment]
        self.peer = self.peer or _peer_name(transport)
        if len(self.server.connections) >= self.limits.max_connections and not self._make_room():
            return
        self.accepted = True
        self.server.connections.add(self)
        log.info("%s: connected", self.peer)
        self._watch()

    def _make_room(self) -> bool:
        """At the connection limit: close the connection that loses least, or refuse this one."""
        count = len(self.server.connections)
        victim = self.server.evictable()
        if victim is None:
            log.warning("%s: refused: all %d connections have requests being served", self.peer, count)
            self.abort()
            return False
        why = (
            "closing"
            if victim.closing()
            else "holding no fid"
            if not victim.session.fids
            else "the longest idle"
        )
        idle = self.loop.time() - victim.last_active
        log.warning(
            "%s: closed to make room for %s: %d connections (the limit), it was %s (idle %.1f s)",
            victim.peer,
            self.peer,
            count,
            why,
            idle,
        )
        victim.abort()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self._abort_pending()
        if self.timer is not None:
            self.timer.cancel()
        if self.out is not None and self.out is not self.transport:
            self.out.close()
        if self.accepted:
            self.server.connections.discard(self)
            log.info("%s: closed after %d requests", self.peer, self.requests)
        self.closed.set()

    def eof_received(self) -> bool | None:
        # The client sends nothing more. Replies it leaves unread would keep the socket open for good.
        out = self.out
        if out is self.transport and isinstance(out, asyncio.WriteTransport) and out.get_write_buffer_size():
            self.abort()
        return None  # close

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

    def abort(self) -> None:
        """Close now, dropping what the client has not read: a client that reads nothing must not keep
        its socket (or the server's shutdown) waiting. The place it held is free at once."""
        self.server.connections.discard(self)
        self._abort_pending()
        transport = self.transport
        if transport is not None:
            getattr(transport, "abort", transport.close)()  # a read pipe (stdio) has no abort

    def closing(self) -> bool:
        return self.transport is None or self.transport.is_closing()

    def in_flight(self) -> int:
        """Requests of this connection being served: waiting for a worker thread or running in one."""
        return self.server.workers.load(self)

    # -- deadlines ----------------------------------------------------------------------------------

    def _deadline(self) -> tuple[float, str] | None:
        """The nearest deadline that applies now, and what passing it means."""
        limits, found = self.limits, []
        if not self.versioned and limits.version_timeout:
            found.append(
                (self.opened_at + limits.version_timeout, f"no Tversion in {limits.version_timeout:g} s")
            )
        if self.frame_started is not None and limits.frame_timeout:
            why = f"a frame still arriving after {limits.frame_timeout:g} s"
            found.append((self.frame_started + limits.frame_timeout, why))
        if self.versioned and limits.idle_timeout and not self.session.fids and not self.pending:
            why = f"idle with no fid for {limits.idle_timeout:g} s"
            found.append((self.last_active + limits.idle_timeout, why))
        return min(found, default=None)

    def _watch(self) -> None:
        """Make sure the timer fires no later than the nearest deadline (early is fine: it looks again)."""
        if not self.timed or self.closing():
            return
        deadline = self._deadline()
        if deadline is None:
            return
        if self.timer is not None:
            if self.timer.when() <= deadline[0]:
                return
            self.timer.cancel()
        self.timer = self.loop.call_at(deadline[0], self._expire)

    def _expire(self) -> None:
        self.timer = None
        deadline = self._deadline()
        if deadline is None or self.closing():
            return
        if deadline[0] > self.loop.time():
            self._watch()
            return
        log.warning("%s: closed: %s", self.peer, deadline[1])
        self.abort()

    # -- frames in ----------------------------------------------------------------------------------

    def _busy(self) -> bool:
        """Read no more frames while the client leaves our replies unread, or too many are in flight:
        what a connection buffers stays bounded."""
        return self.closing() or not self.drained.is_set() or len(self.pending) >= self.limits.max_outstanding

    def _consume(self) -> None:
        buf, pos = self.buffer, 0
        try:
            while not self._busy() and len(buf) - pos >= 4:
                size = int.from_bytes(buf[pos : pos + 4], "little")
                if not wire.HEADER_SIZE <= size <= self.session.msize:
                    log.warning(
                        "%s: bad frame size %d (msize %d): closing", self.peer, size, self.session.msize
                    )
                    self.abort()
                    return
                if len(buf) - pos < size:
                    break
                frame = bytes(buf[pos : pos + size])
                pos += size
                self.requests += 1
                if not self.dispatch(frame):
                    self.abort()
                    return
        finally:
            del buf[:pos]
        self._flow()
        if buf and not self.reading_paused:
            # What is left is the start of a frame (while reading is paused it waits for us, not them).
            if self.frame_started is None:
                self.frame_started = self.loop.time()
        else:
            self.frame_started = None
        if pos:
            self.last_active = self.loop.time()
        self._watch()

    def _flow(self) -> None:
        transport = self.transport
        if transport is None or self.closing():
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
                step = advance(result, self.server.fs.lock)
                if isinstance(step, Call):
                    self.pending[msg.tag] = asyncio.create_task(self.finish(msg, result, step))
                    return
                result = step
        except Exception as exc:
            result = self._failure(msg, exc)
        self.send(result)

    async def finish(self, msg: Message, work: Work, call: Call) -> None:
        """Go on with a request in worker threads; the loop serves others meanwhile."""
        try:
            # Outstanding reads whose replies the client never takes would each hold up to msize bytes:
            # a bulk reply keeps its slot until the client has drained it.
            async with self.bulk if msg.type in BULK else contextlib.nullcontext():
                try:
                    step: Message | Call = call
                    while isinstance(step, Call):
                        value, error = None, None
                        try:
                            value = await self.server.workers.run(self, step.fn, *step.args)
                        except asyncio.CancelledError:
                            raise
                        except Exception as exc:
                            error = exc
                        step = advance(work, self.server.fs.lock, value, error)
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
            self.last_active = self.loop.time()
            self._consume()  # reading may resume; deadlines may start again

    def _failure(self, msg: Message, exc: Exception) -> Message:
        return failure(self.session.dialect, msg, exc, self.peer)

    def _abort_pending(self) -> None:
        for task in self.pending.values():
            task.cancel()
        self.pending.clear()

    # -- session control ----------------------------------------------------------------------------

    def version(self, msg: Message) -> None:
        self._abort_pending()  # Tversion ends the session: outstanding requests get no reply
        reply = self.session.version(msg, self.limits.max_msize)
        if self.session.dialect is not None:
            self.versioned = True
            log.info("%s: %s, msize %d", self.peer, self.session.dialect.value, self.session.msize)
        self.send(reply)

    def flush(self, msg: Message) -> None:
        task = self.pending.pop(msg.num("oldtag"), None)
        if task is not None:
            task.cancel()
        self.send(Message(MsgType.RFLUSH, msg.tag))
