"""A server on 127.0.0.1 that answers ranged GETs of one image honestly, or with the hostile answer a case's
plan gives its next request: the bytes on the wire are written here by hand, so that an answer can be
anything (a garbage status line, a header a megabyte long, a body that drips, a lie in Content-Range).

Each case reads /c<N>/disk.img; its Plan says which of its requests get which FAULTS (by the request's
number within the case), and records what each request got. Many cases may run at once.
"""

from __future__ import annotations

import contextlib
import gzip
import random
import re
import socket
import socketserver
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

ETAG, LAST_MODIFIED = '"v1"', "Sat, 10 Oct 2020 08:00:00 GMT"
MAX_REQUEST = 64 << 10
DRAG = 5.0  # seconds a slow answer goes on for at the most (the client must give up well before)
_RANGE = re.compile(rb"bytes=(\d+)-(\d*)")
_PATH = re.compile(rb"/c(\d+)/")


@dataclass
class Plan:
    """What one case's requests get: `faults[i]` for its request number i, else `always` ("" = honest)."""

    faults: dict[int, str] = field(default_factory=dict)
    always: str = ""
    seed: str = ""
    got: list[str] = field(default_factory=list)  # what each request got, in order
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next(self) -> tuple[str, random.Random]:
        with self.lock:
            n = len(self.got)
            fault = self.faults.get(n, self.always)
            self.got.append(fault or "honest")
        return fault, random.Random(f"{self.seed}:{n}")


@dataclass
class Request:
    path: bytes
    headers: dict[bytes, bytes]


@dataclass
class Answer:
    """An honest answer, which a fault then bends."""

    status: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def header(self, name: bytes, value: bytes | None) -> None:
        """Replace (or with None, drop) header `name`."""
        self.headers = [(k, v) for k, v in self.headers if k.lower() != name.lower()]
        if value is not None:
            self.headers.append((name, value))

    def head(self) -> bytes:
        lines = [b"HTTP/1.1 " + self.status] + [k + b": " + v for k, v in self.headers]
        return b"\r\n".join(lines) + b"\r\n\r\n"


def honest(data: bytes, request: Request) -> Answer:
    """What a static server answers: 206 with Content-Range, or 200 without Range, or 416 past the end."""
    validators = [(b"ETag", ETAG.encode()), (b"Last-Modified", LAST_MODIFIED.encode())]
    asked = _RANGE.fullmatch(request.headers.get(b"range", b""))
    if asked is None:
        return Answer(b"200 OK", [*validators, (b"Content-Length", b"%d" % len(data))], data)
    first = int(asked.group(1))
    last = min(int(asked.group(2)) if asked.group(2) else len(data) - 1, len(data) - 1)
    if first >= len(data):
        return Answer(b"416 Range Not Satisfiable", [(b"Content-Range", b"bytes */%d" % len(data))], b"")
    body = data[first : last + 1]
    headers = [
        *validators,
        (b"Content-Range", b"bytes %d-%d/%d" % (first, last, len(data))),
        (b"Content-Length", b"%d" % len(body)),
    ]
    return Answer(b"206 Partial Content", headers, body)


class Wire:
    """One answer's way out: the socket, and whether the connection must close after it."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.close = False

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def drip(self, data: bytes, step: int, pause: float) -> None:
        """`data` a few bytes at a time, for DRAG seconds at the most (then the connection closes)."""
        until = time.monotonic() + DRAG
        for i in range(0, len(data), step):
            if time.monotonic() > until:
                self.close = True
                return
            self.sock.sendall(data[i : i + step])
            time.sleep(pause)

    def reset(self) -> None:
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close = True


Fault = Callable[[Answer, Wire, random.Random, bytes], None]
FAULTS: dict[str, Fault] = {}
# Faults no transport can see through (the body's bytes are wrong, every header right): only cases that
# read an image, whose checksums must catch them, are given these.
BODY_FAULTS: set[str] = set()


def fault(*, body: bool = False) -> Callable[[Fault], Fault]:
    def register(f: Fault) -> Fault:
        name = f.__name__.removeprefix("f_").replace("_", "-")
        FAULTS[name] = f
        if body:
            BODY_FAULTS.add(name)
        return f

    return register


def _out(answer: Answer, wire: Wire) -> None:
    wire.send(answer.head() + answer.body)


@fault()
def f_close(answer: Answer, wire: Wire, rng: random.Random, data: bytes) -> None:
    wire.close = True


@fault()
def f_reset(answer: Answer, wire: Wire, rng: random.Random, data: bytes) -> None:
    wire.reset()


@fault()
def f_garbage(answer: Answer, wire: Wire, rng: random.Random, data: bytes) -> None:
    wire.send(rng.randbytes(rng.randrange(1, 4096)))
    wire.close = rng.random() < 0.5


@fault()
def f_status_line(answer: Answer, wire: Wire, rng: random.Random, data: bytes) -> None:
    head = answer.head().split(b"\r\n", 1)[1]
    line = rng.choice(
        [b"HTTP/9.9 206 Partial", b"HTTP/1.1 2x6 OK", b"HTTP/1.1", b"ICY 200 OK", b"HTTP/1.1 -206 No", b""]
    )
    wire.send(line + b"\r\n" + head + answer.body)


@fault()
def f_status(answer: Answer, wire: Wire, rng: random.Random, data: bytes) -> None:
    code = rng.choice(
        [204, 304, 400, 401, 403, 404, 408, 410, 412, 416, 418, 429, 500, 502, 503, 504, 599, 999]
    )
    answer.status = b"%d Whatever" % code
    if code in (429, 503):
        answer.header(b"Retry-After", rng.choice([b"0", b"1", b"soon", b"-1", b"\xb2"]))
    answer.body = b"" if code in (204, 304) else rng.randbytes(rng.randrange(64))
    answer.header(b"Content-Length", b"%d" % len(answer.body))
    answer.header(b"Content-Range", None)
    _out(answer, wire)


@fault()
def f_whole(answer: Answer, wire: Wire, rng: random.Random, data: bytes) -> None:
    """200 with the whole image, Range ignored."""
    answer.status, answer.body = b"200 OK", data
    answer.header(b"Content-Range", None)
    answer.header(b"Content-Length", b"%d" % len(data))
    _out(answer, wire)


@fault()
def f_200_for_the_range(answer: Answer, wire: Wire, rng: random.Random, data: bytes) -> None:
    """200 with the bytes asked for only: a server claiming the image is that long."""
    answer.status = b"200 OK"
    answer.header(b"Content-Range", None)
    _out(answer, wire)


def _content_range(answer: Answer) -> tuple[int, int, int] | None:
    value = dict(answer.headers).get(b"Content-Range", b"")
    match = re.fullmatch(rb"bytes (\d+)-(\d+)/(\d+)", value)
    return tuple(map(int, match.groups())) if match else None  # type: ignore[return-value]


@fault()
def f_range_lie(answer: Answer, wire: Wire, rng: random.Random, data: bytes) -> None:
    """Content-Range off: another start, end or total size, or an absurd one."""
    shown = _content_range(answer)
    if shown is None:
        return _out(answer, wire)
    first, last, total = shown
    which = rng.randrange(3)
    delta = rng.choice([-1, 1, -4096, 4096, 1 << 40])
    if which == 0:
        first = max(0, first + delta)
    elif which == 1:
        last = max(0, last + delta)
    else:
        total = max(0, total + delta)
    answer.header(b"Content-Range", b"bytes %d-%d/%d" % (first, last, total))
    _out(answer, wire)


@fault()
def f_range_junk(answer: Answer, wire: Wire, rng: random.Random, data: bytes) -> None:
    """Content-Range missing, malformed, or with numbers too long to be numbers."""
    answer.header(
        b"Content-Range",
        rng.choice(
            [
                None,
                b"",
                b"bytes */%d" % len(data),
                b"bytes 0-10/*",
                b"bytes=0-10/100",
                b"items 0-1/2",
                b"bytes 5-1/10",
                b"bytes " + b"9" * rng.choice([30, 5000, 60000]) + b"-1/2",
                b"bytes 0-1/" + b"9" * rng.choice([30, 5000]),
                b"bytes \xb2-\xb3/\xb9",
                rng.randbytes(rng.randrange(1, 40)).replace(b"\r", b"").replace(b"\n", b""),
            ]
        ),
    )
    _out(answer, wire)


@fault()
def f_length_lie(answer: Answer, wire: Wire, rng: random.Random, data: bytes) -> None:
    """A Content-Length other than the body's: the body as it is, cut to it, or padded to it."""
    n = len(answer.body)
    declared = max(0, n + rng.choice([-1, 1, -n // 2, 4096, 1 << 50]))
    answer.header(b"Content-Length", b"%d" % declared)
    how = rng.randrange(3)
    if how == 1:
        answer.body = answer.body[:declared]
    elif how == 2 and declared < n + 8192:
        answer.body = answer.body + rng.randbytes(declared - n) if declared > n else answer.body
    wire.close = True
    _out(answer, wire)


@fault()
def f_length_junk(answer: Answer, wire: Wire, rng: random.Random, data: bytes) -> None:
    n = b"%d" % len(answer.body)
    choice = rng.choice(
        [b"abc", b"-1", b"", b" " + n, n + b", " + n, b"0x10", b"1e3", b"\xb2", b"9" * 5000, b"+" + n]
    )
    answer.header(b"Content-Length", choice)
    if rng.random() < 0.3:
        answer.headers.append((b"Content-Length", b"%d" % (len(answer.body) + 1)))  # a second, unlike it
    wire.close = True
    _out(answer, wire)


@fault()
def f_short_body(answer: Answer, wire: Wire, rng: random.Random, data: bytes) -> None:
    wire.send(answer.head() + answer.body[: rng.randrange(len(answer.body) + 1)])
    wire.close = True


@fault()
def f_long_body(answer: Answer, wire: Wire, rng: random.Random, data: bytes) -> None:
    """Bytes after the body, which a kept-alive connection would take for the next answer."""
    _out(answer, wire)
    wire.send(
        rng.choice([rng.randbytes(rng.randrange(1, 200)), b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n"])
    )


@fault()
def f_chunked(answer: Answer, wire: Wire, rng: random.Random, data: bytes) -> None:
    """The body chunked: honestly, or with a chunk size that lies or is not a number."""
    answer.header(b"Content-Length", None)
    answer.header(b"Transfer-Encoding", b"chunked")
    body, out = answer.body, []
    at = 0
    while at < len(body):
        n = rng.randrange(1, 8192)
        out.append(b"%x\r\n%s\r\n" % (n, body[at : at + n]))
        at += n
    if rng.random() < 0.5 and out:
        i = rng.randrange(len(out))
        out[i] = rng.choice([b"zz\r\n", b"%x\r\n" % (1 << 60), b"-5\r\n", b"1\r\nab\r\n", b"\r\n"]) + out[i]
    wire.send(answer.head() + b"".join(out) + b"0\r\n\r\n")
    wire.close = True


@fault()
def f_validators(answer: Answer, wire: Wire, rng: random.Random, data: bytes) -> None:
    """Another ETag or Last-Modified (another image, or a server that cannot keep its story), or none."""
    what = rng.randrange(4)
    if what == 0:
        answer.header(b"ETag", b'"v2"')
    elif what == 1:
        answer.header(b"Last-Modified", b"Sun, 11 Oct 2020 08:00:00 GMT")
    elif what == 2:
        answer.header(b"ETag", b'W/"v1"')
    else:
        answer.header(b"ETag", None)
        answer.header(b"Last-Modified", None)
    _out(answer, wire)


@fault()
def f_headers_junk(answer: Answer, wire: Wire, rng: random.Random, data: bytes) -> None:
    """Header lines no server should send: too many, too long, without a colon, with control bytes."""
    how = rng.randrange(5)
    if how == 0:
        answer.headers += [(b"X-%d" % i, b"y") for i in range(rng.choice([50, 150, 5000]))]
    elif how == 1:
        answer.headers.append((b"X-Long", b"z" * rng.choice([8000, 70000, 1 << 20])))
    elif how == 2:
        answer.headers.append((b"X-Bin\x00\x7f", rng.randbytes(20).replace(b"\r", b"").replace(b"\n", b"")))
    head = answer.head()
    if how == 3:
        head = head.replace(b"\r\n", b"\r\nno colon here\r\n", 1)
    elif how == 4:
        head = head.replace(b"\r\n", b"\r\n folded continuation\r\n", 1)  # obs-fold as the first header
    wire.send(head + answer.body)
    wire.close = True


@fault()
def f_encoding(answer: Answer, wire: Wire, rng: random.Random, data: bytes) -> None:
    """Content-Encoding not asked for, or a multipart body to a one-range request."""
    if rng.random() < 0.5:
        answer.body = gzip.compress(answer.body)
        answer.header(b"Content-Encoding", rng.choice([b"gzip", b"br", b"GZIP ", b"identity, gzip"]))
        answer.header(b"Content-Length", b"%d" % len(answer.body))
    else:
        answer.header(b"Content-Type", b"multipart/byteranges; boundary=x")
    _out(answer, wire)


@fault()
def f_redirect(answer: Answer, wire: Wire, rng: random.Random, data: bytes) -> None:
    """A redirect: to the same path (a loop, as long as the plan says), elsewhere here, or nowhere."""
    location = rng.choice([b"/c0/../loop", b"", b"ftp://127.0.0.1/x", b"http://", b"//[::1", b"\x00"])
    answer.status, answer.body = rng.choice([b"301 Moved", b"302 Found", b"307 Temporary"]), b""
    answer.headers = [(b"Location", location), (b"Content-Length", b"0")]
    _out(answer, wire)


@fault()
def f_drip_body(answer: Answer, wire: Wire, rng: random.Random, data: bytes) -> None:
    wire.send(answer.head())
    wire.drip(answer.body, rng.choice([1, 16, 256]), 0.01)


@fault()
def f_drip_head(answer: Answer, wire: Wire, rng: random.Random, data: bytes) -> None:
    """The status line and headers a byte at a time, each byte within any per-read timeout."""
    wire.drip(answer.head() + b"X-Pad: " + b"p" * 60000 + b"\r\n", 1, 0.02)
    wire.close = True


@fault()
def f_continue_flood(answer: Answer, wire: Wire, rng: random.Random, data: bytes) -> None:
    """Interim 100 Continue answers, on and on, then the real one."""
    wire.drip(b"HTTP/1.1 100 Continue\r\n\r\n" * 100_000, 26, 0.005)
    if not wire.close:
        _out(answer, wire)


@fault()
def f_stall(answer: Answer, wire: Wire, rng: random.Random, data: bytes) -> None:
    """Part of the answer, then silence until the client gives up (or DRAG passes)."""
    whole = answer.head() + answer.body
    wire.send(whole[: rng.randrange(len(whole))])
    wire.sock.settimeout(DRAG)
    with contextlib.suppress(OSError):
        wire.sock.recv(1)
    wire.close = True


@fault(body=True)
def f_flip(answer: Answer, wire: Wire, rng: random.Random, data: bytes) -> None:
    """A bit of the body flipped, every header right."""
    if answer.body:
        body = bytearray(answer.body)
        body[rng.randrange(len(body))] ^= 1 << rng.randrange(8)
        answer.body = bytes(body)
    _out(answer, wire)


@fault(body=True)
def f_other_bytes(answer: Answer, wire: Wire, rng: random.Random, data: bytes) -> None:
    """Another range's bytes (or zeros) under this range's headers."""
    n = len(answer.body)
    if rng.random() < 0.5 and len(data) > n:
        at = rng.randrange(len(data) - n)
        answer.body = data[at : at + n]
    else:
        answer.body = bytes(n)
    _out(answer, wire)


class _Handler(socketserver.BaseRequestHandler):
    server: HostileServer

    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.settimeout(DRAG * 2)
        buffered = b""
        try:
            while True:
                while b"\r\n\r\n" not in buffered:
                    chunk = sock.recv(65536)
                    if not chunk or len(buffered) > MAX_REQUEST:
                        return
                    buffered += chunk
                raw, buffered = buffered.split(b"\r\n\r\n", 1)
                request = _parse(raw)
                if request is None:
                    return
                if not self._answer(sock, request):
                    return
        except OSError:
            pass  # a client hanging up on a hostile answer is what the cases are about

    def _answer(self, sock: socket.socket, request: Request) -> bool:
        """Answer one request; whether the connection stays open."""
        match = _PATH.match(request.path)
        plan = self.server.plans.get(int(match.group(1))) if match else None
        if plan is None:
            sock.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            return True
        name, rng = plan.next()
        answer = honest(self.server.data, request)
        wire = Wire(sock)
        if name:
            FAULTS[name](answer, wire, rng, self.server.data)
        else:
            _out(answer, wire)
        return not wire.close


def _parse(raw: bytes) -> Request | None:
    lines = raw.split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or parts[0] != b"GET":
        return None
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    return Request(parts[1], headers)


class HostileServer(socketserver.ThreadingTCPServer):
    """The server, in a thread: `plans[N]` is what case N's requests get."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, data: bytes) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.data = data
        self.plans: dict[int, Plan] = {}

    def url(self, case: int) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/c{case}/disk.img"

    def handle_error(self, request: object, client_address: object) -> None:
        pass

    def __enter__(self) -> Self:
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(timeout=5)
