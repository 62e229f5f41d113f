"""A small HTTP server of the tests' own that serves one image correctly, or misbehaves on purpose.

It speaks ranges as a static server does (206 with Content-Range, strong ETag, If-Range, If-None-Match)
until told otherwise: `faults` is a queue of misbehaviours, each spent by one request, and `always` one that
every request gets. `requests` records what each request asked for.
"""

from __future__ import annotations

import gzip
import re
import socket
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Self

# What a request can be made to suffer.
FAULTS = (
    "ignore-range",  # 200 with the whole image
    "wrong-range",  # 206 for a range one byte further than asked
    "wrong-size",  # 206 whose Content-Range states another total size
    "truncate",  # half the body, then the connection closes
    "short-length",  # a Content-Length smaller than the range
    "slow",  # the body trickles, a few bytes at a time
    "reset",  # the connection is reset before any answer
    "503",  # Service Unavailable
    "500",
    "404",
    "412",
    "gzip",  # the body gzipped, with Content-Encoding: gzip
    "redirect",  # 302 to /moved/<name> (on `redirect_to`), which serves the same image
    "redirect-loop",  # 302 to itself
)


@dataclass
class Asked:
    path: str
    headers: dict[str, str]


@dataclass
class State:
    data: bytes
    etag: str = '"v1"'
    last_modified: str = "Sat, 10 Oct 2020 08:00:00 GMT"
    faults: deque[str] = field(default_factory=deque)
    always: str = ""
    honour_if_range: bool = True
    redirect_to: str = ""  # where "redirect" leads: "http://host:port", or "" for this server
    requests: list[Asked] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def replace(self, data: bytes, etag: str) -> None:
        """The image is replaced on the server: new bytes, new validators."""
        with self.lock:
            self.data, self.etag = data, etag
            self.last_modified = "Sun, 11 Oct 2020 08:00:00 GMT"


_RANGE = re.compile(r"bytes=(\d+)-(\d*)")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        state = self.server.state
        with state.lock:
            state.requests.append(Asked(self.path, dict(self.headers.items())))
            fault = state.faults.popleft() if state.faults else state.always
            data, etag, modified = state.data, state.etag, state.last_modified
        if fault == "reset":
            # SO_LINGER 0: close() sends a RST instead of a FIN.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            return
        if fault == "redirect-loop":
            return self._answer(302, b"", {"Location": self.path})
        if fault == "redirect":
            return self._answer(302, b"", {"Location": f"{state.redirect_to}/moved{self.path}"})
        if fault in ("503", "500", "404", "412"):
            return self._answer(int(fault), b"no\n", {"Retry-After": "0"} if fault == "503" else {})
        validators = {k: v for k, v in (("ETag", etag), ("Last-Modified", modified)) if v}
        if etag and self.headers.get("If-None-Match") == etag:
            return self._answer(304, b"", validators)
        asked = _RANGE.fullmatch(self.headers.get("Range", ""))
        if_range = self.headers.get("If-Range")
        stale = if_range is not None and if_range not in (etag, modified) and state.honour_if_range
        if asked is None or fault == "ignore-range" or stale:
            return self._answer(200, data, validators, fault)
        first = int(asked.group(1))
        last = min(int(asked.group(2)) if asked.group(2) else len(data) - 1, len(data) - 1)
        if first >= len(data):
            return self._answer(416, b"", {"Content-Range": f"bytes */{len(data)}"})
        shown_first, size = first, len(data)
        if fault == "wrong-range":
            shown_first = first + 1
        if fault == "wrong-size":
            size += 1
        headers = {**validators, "Content-Range": f"bytes {shown_first}-{last}/{size}"}
        self._answer(206, data[first : last + 1], headers, fault)

    def _answer(self, status: int, body: bytes, headers: dict[str, str], fault: str = "") -> None:
        if fault == "gzip":
            body = gzip.compress(body)
            headers = {**headers, "Content-Encoding": "gzip"}
        length = len(body) - 1 if fault == "short-length" and body else len(body)
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(length))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        try:
            if fault == "truncate":
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
            elif fault == "slow":
                for i in range(0, len(body), 16):
                    self.wfile.write(body[i : i + 16])
                    self.wfile.flush()
                    time.sleep(0.05)
            else:
                self.wfile.write(body[:length])
        except OSError:
            self.close_connection = True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: State

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client hanging up on a misbehaving answer is what the tests are about


class Hostile:
    """The server on 127.0.0.1, in a thread; `state` says what it serves and how."""

    def __init__(self, data: bytes) -> None:
        self.state = State(data)

    def url(self, name: str = "disk.img", userinfo: str = "") -> str:
        at = f"{userinfo}@" if userinfo else ""
        return f"http://{at}127.0.0.1:{self._server.server_port}/{name}"

    def __enter__(self) -> Self:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.state = self.state
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
