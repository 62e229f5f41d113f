"""The serial server (unikernel disk mode's) answers a conversation byte for byte as the asyncio server does.

Both get the same frames, one at a time, over a real image: every path walked, stat'ed, opened, read or
listed, links read, mutations refused, malformed and unknown frames, a Tflush, a second Tversion.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

import pytest
from trees import DIR, LINK, read_fs_tree

import docteur
from docteur.ninep import wire
from docteur.ninep.serial import serve_serially
from docteur.ninep.tree import TreeFS
from docteur.ninep.wire import Dialect, Message, MsgType

from .conftest import Served
from .sample import Sample

ROOT, FID, DIRFID = 0, 1, 2
READ = 8192  # small enough that large files take several reads
Serve = Callable[..., AbstractContextManager[Served]]


def conversation(sample: Sample) -> Iterator[bytes]:
    """The frames a client sends, each answered before the next."""
    tags = iter(range(1, 1 << 16))

    def frame(kind: MsgType, **args: wire.Value) -> bytes:
        return wire.encode(Message(kind, next(tags), **args), Dialect.L)

    yield wire.encode(Message(MsgType.TVERSION, 0xFFFF, msize=65536, version=b"9P2000.L"), Dialect.L)
    yield frame(MsgType.TATTACH, fid=ROOT, afid=wire.NOFID, uname=b"", aname=b"", n_uname=0)
    for path, (mode, content) in sorted(read_fs_tree(sample.source).items()):
        yield frame(MsgType.TWALK, fid=ROOT, newfid=FID, wnames=path.split(b"/"))
        yield frame(MsgType.TGETATTR, fid=FID, request_mask=0x3FFF)
        if mode == LINK:
            yield frame(MsgType.TREADLINK, fid=FID)
        else:
            yield frame(MsgType.TLOPEN, fid=FID, flags=os.O_RDONLY)
            kind = MsgType.TREADDIR if mode == DIR else MsgType.TREAD
            for offset in range(0, len(content) + READ if mode != DIR else 1, READ):
                yield frame(kind, fid=FID, offset=offset, count=READ)
        yield frame(MsgType.TCLUNK, fid=FID)
    yield frame(MsgType.TWALK, fid=ROOT, newfid=DIRFID, wnames=[])
    yield frame(MsgType.TMKDIR, dfid=DIRFID, name=b"new", mode=0o755, gid=0)
    yield frame(MsgType.TLCREATE, fid=DIRFID, name=b"f", flags=os.O_WRONLY, mode=0o644, gid=0)
    yield frame(MsgType.TWALK, fid=ROOT, newfid=FID, wnames=[b"no", b"such"])
    yield frame(MsgType.TFLUSH, oldtag=1)
    yield b"\x07\x00\x00\x00\x99\x05\x00"  # an unknown message type, tag 5
    yield wire.encode(Message(MsgType.TVERSION, 0xFFFF, msize=8192, version=b"9P2000.u"), Dialect.L)
    yield wire.encode(
        Message(MsgType.TATTACH, 9, fid=ROOT, afid=wire.NOFID, uname=b"", aname=b"", n_uname=0), Dialect.U
    )


def replies(sock: socket.socket, frames: Iterator[bytes]) -> list[bytes]:
    out = []
    with sock.makefile("rb") as incoming:
        for request in frames:
            sock.sendall(request)
            head = incoming.read(4)
            out.append(head + incoming.read(int.from_bytes(head, "little") - 4))
    return out


@pytest.fixture
def image(sample: Sample) -> Iterator[docteur.Image]:
    with docteur.open(sample.image) as img:
        yield img


def test_replies_are_the_asyncio_servers_byte_for_byte(
    image: docteur.Image, sample: Sample, serve: Serve
) -> None:
    with serve(TreeFS(image)) as served, socket.socket(socket.AF_UNIX) as sock:
        sock.connect(served.path)
        expected = replies(sock, conversation(sample))
    ours, theirs = socket.socketpair()
    server = threading.Thread(target=serve_serially, args=(TreeFS(image), theirs), daemon=True)
    server.start()
    with ours:
        got = replies(ours, conversation(sample))
    server.join(10)
    assert not server.is_alive()  # the client hung up: the server returned
    assert len(got) == len(expected) > 100
    for i, (a, b) in enumerate(zip(got, expected, strict=True)):
        assert a == b, f"reply {i}: {wire.decode(a, Dialect.L)!r} != {wire.decode(b, Dialect.L)!r}"


@pytest.mark.parametrize(
    "frame",
    [b"\x03\x00\x00\x00", b"\xff\xff\xff\x7f" + bytes(16), b"\x07\x00\x00\x00\x64"],
    ids=["shorter-than-a-header", "larger-than-msize", "cut-short"],
)
def test_a_bad_frame_ends_the_connection(image: docteur.Image, frame: bytes) -> None:
    ours, theirs = socket.socketpair()
    server = threading.Thread(target=serve_serially, args=(TreeFS(image), theirs), daemon=True)
    server.start()
    with ours:
        ours.sendall(frame)
        ours.shutdown(socket.SHUT_WR)
        assert ours.recv(1) == b""
    server.join(10)
    assert not server.is_alive()
