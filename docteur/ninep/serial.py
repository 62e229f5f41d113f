"""One 9P connection served in order, with no event loop and no threads.

For a client that is alone on its connection and waits for its replies, such as the kernel of the guest
the server runs in (unikernel disk mode): importing asyncio alone costs a quarter of a second of boot under
TCG, and a single client gains nothing from requests overlapping. Each request runs to its reply before the
next frame is read, so a Tflush always finds its request answered. The session, its handlers and their
limits are the asyncio server's own (session.py); only framing and order live here.
"""

from __future__ import annotations

import logging
import socket
from typing import BinaryIO

from docteur.ninep import wire
from docteur.ninep.fs import ReadOnlyFS
from docteur.ninep.limits import Limits
from docteur.ninep.session import Session, advance, error_reply, failure
from docteur.ninep.wire import Dialect, Message, MsgType

log = logging.getLogger("docteur.ninep")


def serve_serially(
    fs: ReadOnlyFS, sock: socket.socket, *, uid: int = 0, gid: int = 0, limits: Limits | None = None
) -> None:
    """Serve SOCK until the client closes it, or sends a frame that ends the connection; then close it."""
    limits = limits or Limits()
    session = Session(
        fs,
        uid=uid,
        gid=gid,
        max_fids=limits.max_fids,
        msize=limits.max_msize,
        fids_held=lambda: len(session.fids),
        max_total_fids=limits.max_total_fids,
    )
    with sock, sock.makefile("rb") as frames:
        _serve(session, sock, frames, limits)


def _serve(session: Session, sock: socket.socket, frames: BinaryIO, limits: Limits) -> None:
    peer = "serial"
    while True:
        head = frames.read(4)
        if len(head) < 4:
            return  # the client is gone
        size = int.from_bytes(head, "little")
        if not wire.HEADER_SIZE <= size <= session.msize:
            log.warning("%s: bad frame size %d (msize %d): closing", peer, size, session.msize)
            return
        frame = head + frames.read(size - 4)
        if len(frame) < size:
            return
        try:
            msg = wire.decode(frame, session.dialect or Dialect.P9)
        except wire.WireError as exc:
            log.warning("%s: malformed message: %s", peer, exc)
            if exc.tag is None:
                return
            reply = error_reply(session.dialect, exc.tag, exc.errno)
        else:
            reply = _answer(session, msg, limits, peer)
        sock.sendall(wire.encode(reply, session.dialect or Dialect.P9))


def _answer(session: Session, msg: Message, limits: Limits, peer: str) -> Message:
    if msg.type is MsgType.TVERSION:
        return session.version(msg, limits.max_msize)
    if msg.type is MsgType.TFLUSH and session.dialect is not None:
        return Message(MsgType.RFLUSH, msg.tag)  # what it names was answered already
    try:
        work = session.request(msg)
        if isinstance(work, Message):
            return work
        # Alone with its client, the server does every call itself: it never stops at one.
        reply = advance(work, session.fs.lock, alone=True)
        assert isinstance(reply, Message)
        return reply
    except Exception as exc:
        return failure(session.dialect, msg, exc, peer)
