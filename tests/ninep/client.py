"""A small synchronous 9P client for the tests, built on the server's own codec."""

from __future__ import annotations

import contextlib
import errno
import os
import select
import socket
from collections.abc import Iterator

from docteur.ninep import wire
from docteur.ninep.wire import Dialect, Message, MsgType, Qid

ERRNO_BY_NAME = {os.strerror(code): code for code in errno.errorcode}


class P9Error(OSError):
    """An error reply, as an OSError with the errno it carries (or that its string names)."""


class Closed(Exception):
    """The server closed the connection."""


class Fds:
    """A channel over two file descriptors (pipes, or a pty's master twice), shaped like a socket."""

    def __init__(self, rfd: int, wfd: int, timeout: float = 20) -> None:
        self.rfd, self.wfd, self.timeout = rfd, wfd, timeout

    def sendall(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.wfd, view) :]

    def recv(self, n: int) -> bytes:
        if not select.select([self.rfd], [], [], self.timeout)[0]:
            raise TimeoutError("no reply")
        try:
            return os.read(self.rfd, n)
        except OSError:  # a pty whose other side closed
            return b""

    def close(self) -> None:
        for fd in {self.rfd, self.wfd}:
            with contextlib.suppress(OSError):  # closed already, to send an end of file
                os.close(fd)


class Client:
    def __init__(self, address: str | tuple[str, int] | socket.socket | Fds, timeout: float = 20) -> None:
        if isinstance(address, socket.socket | Fds):
            self.sock: socket.socket | Fds = address
        else:
            self.sock = socket.socket(socket.AF_UNIX if isinstance(address, str) else socket.AF_INET)
            self.sock.settimeout(timeout)
            self.sock.connect(address)
        self.dialect: Dialect | None = None
        self.msize = 0
        self._tag = 0
        self._fid = 100

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- messages ------------------------------------------------------------------------------------

    def next_tag(self) -> int:
        self._tag = (self._tag + 1) % wire.NOTAG
        return self._tag

    def new_fid(self) -> int:
        self._fid += 1
        return self._fid

    def send(self, type: MsgType, /, tag: int | None = None, **args: wire.Value) -> int:
        tag = self.next_tag() if tag is None else tag
        self.sock.sendall(wire.encode(Message(type, tag, **args), self.dialect or Dialect.P9))
        return tag

    def recv(self) -> Message:
        header = self._exactly(4)
        frame = header + self._exactly(wire.frame_size(header) - 4)
        return wire.decode(frame, self.dialect or Dialect.P9)

    def _exactly(self, n: int) -> bytes:
        chunks = []
        while n:
            chunk = self.sock.recv(n)
            if not chunk:
                raise Closed
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    def closed_by_server(self) -> bool:
        """True when the server hangs up without a further message."""
        try:
            self.recv()
        except Closed:
            return True
        except ConnectionResetError:
            return True
        return False

    @staticmethod
    def check(reply: Message) -> Message:
        if reply.type is MsgType.RLERROR:
            code = reply.num("ecode")
            raise P9Error(code, os.strerror(code))
        if reply.type is MsgType.RERROR:
            text = reply.text("ename").decode()
            raise P9Error(int(reply.args.get("errno", ERRNO_BY_NAME.get(text, 0))), text)  # type: ignore[call-overload]
        return reply

    def rpc(self, type: MsgType, /, **args: wire.Value) -> Message:
        tag = self.send(type, **args)
        reply = self.recv()
        assert reply.tag == tag, f"reply {reply} to tag {tag}"
        return self.check(reply)

    # -- sessions ------------------------------------------------------------------------------------

    def version(self, version: str = "9P2000.L", msize: int = 65536) -> Message:
        reply = self.rpc(MsgType.TVERSION, msize=msize, version=version.encode())
        known = reply.text("version") != b"unknown"
        self.dialect = Dialect(reply.text("version").decode()) if known else None
        self.msize = reply.num("msize")
        return reply

    def attach(self, fid: int = 0) -> Qid:
        args: dict[str, wire.Value] = {"fid": fid, "afid": wire.NOFID, "uname": b"nobody", "aname": b""}
        if self.dialect in (Dialect.U, Dialect.L):
            args["n_uname"] = wire.NONUNAME
        return self.rpc(MsgType.TATTACH, **args).args["qid"]  # type: ignore[return-value]

    @classmethod
    def session(
        cls,
        address: str | tuple[str, int] | socket.socket | Fds,
        version: str = "9P2000.L",
        msize: int = 65536,
    ) -> Client:
        client = cls(address)
        client.version(version, msize)
        client.attach()
        return client

    # -- file operations -----------------------------------------------------------------------------

    def walk(self, path: str | bytes, fid: int = 0, newfid: int | None = None) -> tuple[int, list[Qid]]:
        raw = path.encode("utf-8", "surrogateescape") if isinstance(path, str) else path
        names = [part for part in raw.split(b"/") if part]
        newfid = self.new_fid() if newfid is None else newfid
        reply = self.rpc(MsgType.TWALK, fid=fid, newfid=newfid, wnames=names)
        qids: list[Qid] = reply.args["qids"]  # type: ignore[assignment]
        if len(qids) != len(names):
            raise P9Error(errno.ENOENT, f"walk stopped after {len(qids)} of {len(names)}")
        return newfid, qids

    def open(self, fid: int, mode: int = 0) -> Message:
        if self.dialect is Dialect.L:
            return self.rpc(MsgType.TLOPEN, fid=fid, flags=mode)
        return self.rpc(MsgType.TOPEN, fid=fid, mode=mode)

    def clunk(self, fid: int) -> None:
        self.rpc(MsgType.TCLUNK, fid=fid)

    def chunks(self, fid: int, kind: MsgType = MsgType.TREAD, count: int = 0) -> Iterator[bytes]:
        """Successive reads until an empty one (offsets: bytes, or readdir cookies)."""
        count = count or self.msize - wire.IOHDRSZ
        offset = 0
        while True:
            data = self.rpc(kind, fid=fid, offset=offset, count=count).text("data")
            if not data:
                return
            yield data
            if kind is MsgType.TREADDIR:
                offset = wire.decode_dirents(data)[-1].offset
            else:
                offset += len(data)

    def read(self, path: str | bytes) -> bytes:
        fid, _ = self.walk(path)
        try:
            self.open(fid)
            return b"".join(self.chunks(fid))
        finally:
            self.clunk(fid)

    def listdir(self, path: str | bytes = "", count: int = 0) -> list[tuple[bytes, Qid, int]]:
        """(name, qid, type) per entry: Treaddir in 9P2000.L, stat records otherwise (type = mode)."""
        fid, _ = self.walk(path)
        try:
            self.open(fid)
            if self.dialect is Dialect.L:
                return [
                    (e.name, e.qid, e.type)
                    for chunk in self.chunks(fid, MsgType.TREADDIR, count)
                    for e in wire.decode_dirents(chunk)
                ]
            assert self.dialect is not None
            return [
                (s.name, s.qid, s.mode)
                for chunk in self.chunks(fid, MsgType.TREAD, count)
                for s in wire.decode_stats(chunk, self.dialect)
            ]
        finally:
            self.clunk(fid)

    def getattr(self, path: str | bytes) -> Message:
        fid, _ = self.walk(path)
        try:
            return self.rpc(MsgType.TGETATTR, fid=fid, request_mask=0x3FFF)
        finally:
            self.clunk(fid)

    def stat(self, path: str | bytes) -> wire.Stat:
        fid, _ = self.walk(path)
        try:
            return self.rpc(MsgType.TSTAT, fid=fid).stat()
        finally:
            self.clunk(fid)
