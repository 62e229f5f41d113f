"""Ranged GETs of one image over HTTP(S), with urllib3, treating the server as untrusted.

The first request pins the image (its size, ETag and Last-Modified); every later one asks for exactly one
byte range with `If-Range` on the pin and is checked before a byte is used: status 206, the `Content-Range`
asked for, the pinned size and validators, no `Content-Encoding`, the full length and no more, all of
it by one deadline per attempt (status line and headers included). Failures that a second
try may cure (connection refused or reset, timeouts, a stalled or short body, 408/429/5xx, a wrong range)
are retried a bounded number of times with exponential backoff and jitter; the others, and a last failed
try, raise one RemoteError that names the URL without its credentials. An image that changed since it was
pinned raises ImageChangedError: its bytes are never mixed with the old ones.

urllib3 rather than fsspec's HTTP filesystem: on loopback against nginx both take ~0.25 ms per 64 KiB
range, but urllib3 reads 1 MiB ranges at ~750 MB/s against ~330 MB/s, needs no event loop or aiohttp
(it comes with dulwich), and lets every response header be checked.
"""

from __future__ import annotations

import base64
import io
import logging
import netrc
import os
import random
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import astuple, dataclass
from typing import TypeVar
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import HTTPError, NameResolutionError, ProtocolError, SSLError

from docteur.errors import ImageChangedError, RemoteError

log = logging.getLogger("docteur.http")

USER_AGENT = "docteur/0.1"
REDIRECTS = (301, 302, 303, 307, 308)
RETRIED_STATUSES = (408, 425, 429, 500, 502, 503, 504)
MIN_RATE = 32 << 10  # bytes/s: a body arriving slower than this on average is stalled
MAX_BACKOFF = 5.0
# ASCII digits, at most 19 of them: str.isdigit() and \d take other digits too ("²" is a digit to
# isdigit, not to int()), and int() refuses more than 4,300 digits with a ValueError.
_NUMBER = r"([0-9]{1,19})"
_CONTENT_RANGE = re.compile(rf"bytes {_NUMBER}-{_NUMBER}/{_NUMBER}")
SHOWN = 160  # characters of a server's text a message quotes at the most
T = TypeVar("T")


@dataclass(frozen=True)
class Pin:
    """What identifies the image first contacted: later answers must match it."""

    size: int
    etag: str = ""
    last_modified: str = ""

    @property
    def if_range(self) -> str:
        """The validator for If-Range: a strong ETag, else Last-Modified (a weak ETag cannot be one)."""
        if self.etag and not self.etag.startswith("W/"):
            return self.etag
        return self.last_modified

    @property
    def validated(self) -> bool:
        """Whether a replaced image can be told apart from this one (else nothing may be cached on disk)."""
        return bool(self.etag or self.last_modified)


def public_url(url: str) -> str:
    """`url` fit for messages, logs and names: no user or password, and a query (a signature) elided."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "…" if parts.query else "", ""))


def cache_url(url: str, *, query: bool = False) -> str:
    """`url` without credentials or fragment, and without its query unless asked: what the disk cache keys
    by. An image's blocks are keyed without the query (a signed URL's changes every time it is signed) but
    with the image's validators, which tell images apart; the pin of a URL is keyed with it.
    """
    parts = urlsplit(url)
    return urlunsplit(
        (parts.scheme, parts.netloc.rpartition("@")[2], parts.path, parts.query if query else "", "")
    )


def _credentials(url: str, use_netrc: bool) -> str | None:
    """The Basic Authorization value for `url`: its user and password, else ~/.netrc's entry for the host."""
    parts = urlsplit(url)
    if parts.username is not None:
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
    elif use_netrc and parts.hostname:
        path = os.environ.get("NETRC") or os.path.join(os.path.expanduser("~"), ".netrc")
        if not os.path.exists(path):
            return None
        try:
            entry = netrc.netrc(path).authenticators(parts.hostname)
        except (netrc.NetrcParseError, OSError) as e:
            # The message names the file and line, never its content.
            reason = getattr(e, "msg", None) or getattr(e, "strerror", None) or type(e).__name__
            raise RemoteError(f"{path}: cannot be read: {reason}") from None
        if entry is None:
            return None
        login, _, password = entry
        pair = f"{login}:{password or ''}"
    else:
        return None
    return "Basic " + base64.b64encode(pair.encode()).decode("ascii")


class _Retry(Exception):
    """A failure another attempt may cure; its message says what happened."""


# When the answer this thread is reading must have arrived, status line, headers and body: a per-read
# timeout alone lets a server that sends a byte now and then (or 100 Continue for ever) hold a reader.
_answer = threading.local()


class _DeadlineIO(io.RawIOBase):
    """A socket's reads, each waiting no longer than its thread's answer deadline leaves."""

    def __init__(self, sock: socket.socket, raw: io.RawIOBase) -> None:
        self._sock, self._raw = sock, raw

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int | None:  # type: ignore[override]
        deadline = getattr(_answer, "deadline", None)
        if deadline is None:
            return self._raw.readinto(buffer)
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the answer did not arrive in time")
        timeout = self._sock.gettimeout()
        self._sock.settimeout(left if timeout is None else min(timeout, left))
        try:
            return self._raw.readinto(buffer)
        finally:
            self._sock.settimeout(timeout)

    def close(self) -> None:
        self._raw.close()
        super().close()


class _Guarded:
    """A connected socket whose binary file (what http.client reads an answer from) keeps the deadline."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def makefile(self, mode: str = "r", *args: object, **kwargs: object) -> object:
        if mode != "rb":
            return self._sock.makefile(mode, *args, **kwargs)  # type: ignore[call-overload]
        # The socket's own unbuffered file underneath: it counts as a reference to the socket, which a
        # connection closed early (Connection: close) must keep open for the answer's body.
        return io.BufferedReader(_DeadlineIO(self._sock, self._sock.makefile("rb", buffering=0)))

    def __getattr__(self, name: str) -> object:
        return getattr(self._sock, name)


class _GuardedConnect(HTTPConnection):
    """A connection whose socket, once connected (TLS included), keeps its thread's answer deadline."""

    def connect(self) -> None:
        super().connect()
        self.sock = _Guarded(self.sock)  # type: ignore[assignment]


class _TLSConnection(_GuardedConnect, HTTPSConnection):
    pass


class _Pool(urllib3.HTTPConnectionPool):
    ConnectionCls = _GuardedConnect


class _TLSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _TLSConnection  # type: ignore[assignment]


class Transport:
    """Exactly-the-asked-for byte ranges of the image at `url`, once `contact` has pinned it."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float,
        retries: int,
        backoff: float,
        max_redirects: int,
        ca_certs: str | None,
        use_netrc: bool,
        connections: int,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise RemoteError(f"{public_url(url)}: not an http:// or https:// URL")
        self.name = public_url(url)
        self._url = urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, parts.query, ""))
        self._host = (parts.scheme, parts.hostname, parts.port)
        self._where = self._url  # where the last redirect led: later requests go there directly
        self._auth = _credentials(url, use_netrc)
        self._timeout = timeout
        self._retries = retries
        self._backoff = backoff
        self._max_redirects = max_redirects
        self._http = urllib3.PoolManager(
            num_pools=4,
            maxsize=connections,
            block=False,
            cert_reqs="CERT_REQUIRED",
            ca_certs=ca_certs,
            retries=False,
            timeout=urllib3.Timeout(connect=timeout, read=timeout),
        )
        self._http.pool_classes_by_scheme = {"http": _Pool, "https": _TLSPool}  # type: ignore[dict-item]
        self.pin: Pin | None = None
        self.requests = 0  # sent, retries and redirects included

    def close(self) -> None:
        self._http.clear()

    # -- the two requests --------------------------------------------------------------------------

    def contact(self, length: int, known: Pin | None = None) -> tuple[Pin, bytes | None]:
        """Pin the image with a GET of its first `length` bytes, returned with the pin.

        Given the pin of an earlier run (`known`), the request is conditional: when the server says the image
        is unchanged (304), `known` is kept and no bytes come back.
        """

        def attempt() -> tuple[Pin, bytes | None]:
            headers = {"Range": f"bytes=0-{length - 1}"}
            if known is not None and known.etag:
                headers["If-None-Match"] = known.etag
            elif known is not None and known.last_modified:
                headers["If-Modified-Since"] = known.last_modified
            resp = self._get(headers)
            try:
                if resp.status == 304 and known is not None:
                    etag = resp.headers.get("ETag")
                    if etag and etag != known.etag:
                        raise _Retry(f"answered 304 with ETag {_quoted(etag)}, not the {known.etag} asked")
                    return known, None
                if resp.status == 416:  # nothing to range over: an empty file
                    return self._pin_of(resp, 0), b""
                if resp.status == 200:
                    # The server ignores Range. That is fine only when the whole image is what was asked for.
                    declared = _number(resp.headers.get("Content-Length"))
                    if declared is None or declared > length:
                        raise RemoteError(
                            f"{self.name}: the server ignores Range requests (it answered 200 with the whole "
                            "image): serve it from a server that supports byte ranges"
                        )
                    data = self._body(resp, declared)
                    return self._pin_of(resp, len(data)), data
                self._check_status(resp, 206)
                first, last, total = self._content_range(resp)
                if first != 0 or last != min(length, total) - 1:
                    raise _Retry(f"answered range {first}-{last} to a request for 0-{length - 1}")
                data = self._body(resp, last + 1)
                return self._pin_of(resp, total), data
            finally:
                _finish(resp)

        pin, data = self._attempts(attempt, length)
        self.pin = pin
        log.debug("%s: pinned: %d bytes, ETag %s, Last-Modified %s", self.name, *astuple(pin))
        return pin, data

    def fetch(self, start: int, end: int) -> bytes:
        """The pinned image's bytes [start, end), exactly."""
        pin = self.pin
        assert pin is not None, "contact() first"
        if not 0 <= start < end <= pin.size:
            raise ValueError(f"range {start}-{end} outside the image's {pin.size} bytes")

        def attempt() -> bytes:
            headers = {"Range": f"bytes={start}-{end - 1}"}
            if pin.if_range:
                headers["If-Range"] = pin.if_range
            resp = self._get(headers)
            try:
                if resp.status == 200:
                    self._check_same(resp, pin)  # a 200 to If-Range with the pinned validator: Range ignored
                    raise _Retry("answered 200 with the whole image to a range request")
                if resp.status in (412, 416):
                    raise ImageChangedError(f"{self.name}: the image changed on the server while being read")
                self._check_status(resp, 206)
                self._check_same(resp, pin)
                first, last, total = self._content_range(resp)
                if total != pin.size:
                    raise ImageChangedError(
                        f"{self.name}: the image changed on the server while being read "
                        f"(it was {pin.size} bytes, it is {total})"
                    )
                if (first, last) != (start, end - 1):
                    raise _Retry(f"answered range {first}-{last} to a request for {start}-{end - 1}")
                return self._body(resp, end - start)
            finally:
                _finish(resp)

        return self._attempts(attempt, end - start)

    # -- one attempt's parts -----------------------------------------------------------------------

    def _get(self, headers: dict[str, str]) -> urllib3.BaseHTTPResponse:
        """Send a GET where the last redirect led; its body is not read yet."""
        start = self._where
        resp, final = self._follow(start, headers)
        if resp.status in (401, 403, 404, 410) and start != self._url:
            # The redirect's target may have expired (a signed URL): start again from the URL given.
            _finish(resp)
            resp, final = self._follow(self._url, headers)
        self._where = final if resp.status < 300 else self._url
        return resp

    def _follow(self, url: str, headers: dict[str, str]) -> tuple[urllib3.BaseHTTPResponse, str]:
        """GET `url`, following redirects (bounded): the response and the URL that gave it."""
        headers = {"Accept-Encoding": "identity", "User-Agent": USER_AGENT, **headers}
        for _ in range(self._max_redirects + 1):
            sent = dict(headers)
            parts = urlsplit(url)
            if self._auth and (parts.scheme, parts.hostname, parts.port) == self._host:
                sent["Authorization"] = self._auth  # never to another host that a redirect leads to
            self.requests += 1
            try:
                resp = self._http.request(
                    "GET", url, headers=sent, redirect=False, preload_content=False, decode_content=False
                )
            except SSLError as e:
                raise RemoteError(f"{self.name}: TLS failed: {_reason(e)}") from None
            except NameResolutionError:
                raise RemoteError(f"{self.name}: cannot resolve host {parts.hostname}") from None
            except HTTPError as e:
                raise _Retry(_reason(e)) from None
            location = resp.headers.get("Location")
            if resp.status not in REDIRECTS or not location:
                return resp, url
            _finish(resp)
            try:
                url = urljoin(url, location)
                parts = urlsplit(url)
                _ = parts.port  # raises ValueError when out of range
            except ValueError:
                raise RemoteError(f"{self.name}: redirected to a URL that does not parse") from None
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise RemoteError(f"{self.name}: redirected to a URL that is not http(s)")
        raise RemoteError(f"{self.name}: more than {self._max_redirects} redirects")

    def _check_status(self, resp: urllib3.BaseHTTPResponse, expected: int) -> None:
        status = resp.status
        if status == expected:
            encoding = resp.headers.get("Content-Encoding", "identity").strip().lower()
            if encoding not in ("", "identity"):
                raise RemoteError(
                    f"{self.name}: the server sent Content-Encoding {_quoted(encoding)}, which was not "
                    "asked for (Accept-Encoding: identity)"
                )
            if resp.headers.get("Content-Type", "").startswith("multipart/"):
                raise _Retry("answered a multipart body to a one-range request")
            return
        if status in RETRIED_STATUSES:
            raise _Retry(f"HTTP {status} {_shown(resp.reason or '')}".strip(), _retry_after(resp))
        if status in (401, 407):
            raise RemoteError(f"{self.name}: authentication required or refused (HTTP {status})")
        if status == 403:
            raise RemoteError(f"{self.name}: access forbidden (HTTP 403)")
        if status in (404, 410):
            raise RemoteError(f"{self.name}: no such image on the server (HTTP {status})")
        raise RemoteError(f"{self.name}: unexpected answer HTTP {status} {_shown(resp.reason or '')}".strip())

    def _content_range(self, resp: urllib3.BaseHTTPResponse) -> tuple[int, int, int]:
        value = resp.headers.get("Content-Range", "")
        match = _CONTENT_RANGE.fullmatch(value.strip())
        if match is None:
            raise _Retry(f"answered 206 with Content-Range {_quoted(value)}, not bytes FIRST-LAST/SIZE")
        first, last, total = map(int, match.groups())
        if not first <= last < total:
            raise _Retry(f"answered an impossible Content-Range {_quoted(value)}")
        return first, last, total

    def _check_same(self, resp: urllib3.BaseHTTPResponse, pin: Pin) -> None:
        """An answer whose validators differ from the pin's comes from another image."""
        for header, pinned in (("ETag", pin.etag), ("Last-Modified", pin.last_modified)):
            value = resp.headers.get(header)
            if value and pinned and value != pinned:
                raise ImageChangedError(f"{self.name}: the image changed on the server while being read")

    def _pin_of(self, resp: urllib3.BaseHTTPResponse, size: int) -> Pin:
        return Pin(size, resp.headers.get("ETag", ""), resp.headers.get("Last-Modified", ""))

    def _body(self, resp: urllib3.BaseHTTPResponse, length: int) -> bytes:
        """Exactly `length` bytes of body, by the answer's deadline, which a stalled or trickling body
        misses."""
        declared = resp.headers.get("Content-Length")
        if declared is not None and _number(declared) != length:
            raise _Retry(f"announced a {_shown(declared.strip())}-byte body where {length} were asked for")
        deadline = _answer.deadline
        chunks = []
        got = 0
        try:
            while got < length:
                chunk = resp.read1(length - got)
                if not chunk:
                    raise _Retry(f"sent {got} of {length} bytes, then ended the body")
                chunks.append(chunk)
                got += len(chunk)
                if time.monotonic() > deadline:
                    raise _Retry(f"sent {got} of {length} bytes too slowly")
            # A body without Content-Length (chunked) must end here too: one that goes on is not the
            # range asked for, its first bytes no more than the rest (a chunk size that lies shifts them).
            if resp.length_remaining is None and resp.read1(1):
                raise _Retry(f"sent more than the {length} bytes asked for")
        except (HTTPError, OSError) as e:
            if time.monotonic() >= deadline:
                raise _Retry(f"sent {got} of {length} bytes too slowly") from None
            raise _Retry(f"failed after {got} of {length} bytes: {_reason(e)}") from None
        return b"".join(chunks)

    # -- retries -----------------------------------------------------------------------------------

    def _attempts(self, attempt: Callable[[], T], length: int) -> T:
        """attempt() until it succeeds or fails for good; each must have its answer of `length` bytes
        within the timeout and the time the body takes at MIN_RATE."""
        for n in range(self._retries + 1):
            _answer.deadline = time.monotonic() + self._timeout + length / MIN_RATE
            try:
                return attempt()
            except _Retry as e:
                if n == self._retries:
                    tries = f" ({n + 1} attempts)" if n else ""
                    raise RemoteError(f"{self.name}: {_shown(e.args[0])}{tries}") from None
                pause = min(MAX_BACKOFF, self._backoff * 2**n) * random.uniform(0.5, 1.5)
                hinted = e.args[1] if len(e.args) > 1 else None
                pause = min(MAX_BACKOFF, max(pause, hinted or 0.0))
                log.debug("%s: %s; trying again in %.2f s", self.name, e.args[0], pause)
                time.sleep(pause)
            finally:
                _answer.deadline = None
        raise AssertionError("unreachable")


def _retry_after(resp: urllib3.BaseHTTPResponse) -> float | None:
    return _number(resp.headers.get("Retry-After"))


def _number(value: str | None) -> int | None:
    """A header's non-negative integer, or None when it is not one (missing, not ASCII digits, too long)."""
    match = re.fullmatch(_NUMBER, value.strip()) if value is not None else None
    return int(match.group(1)) if match else None


def _shown(text: str) -> str:
    """A server's text made fit for a one-line message: control characters escaped, at most SHOWN long."""
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return text if len(text) <= SHOWN else text[:SHOWN] + "…"


def _quoted(value: str) -> str:
    return repr(_shown(value))


def _finish(resp: urllib3.BaseHTTPResponse) -> None:
    """Give the connection back when its body was read to the end, else close it (unread bytes on a kept-alive
    connection would be taken for the next answer)."""
    if resp.length_remaining == 0:
        resp.drain_conn()  # an empty rest: lets http.client take the connection's next request
    else:
        resp.close()
    resp.release_conn()


def _reason(e: BaseException) -> str:
    """A urllib3 or socket error as a short phrase, without urllib3's connection prefix."""
    if isinstance(e, ProtocolError) and len(e.args) > 1 and isinstance(e.args[1], BaseException):
        e = e.args[1]
    text = str(e)
    if text.startswith(("HTTPConnection(", "HTTPSConnection(")) and "): " in text:
        text = text.split("): ", 1)[1]
    return text or type(e).__name__
