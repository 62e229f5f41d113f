"""Real HTTP infrastructure on 127.0.0.1 for the remote tests and bench/bench_http.py.

- `Nginx`: Debian's nginx started with a configuration of its own (a free port, a temp prefix, no
  root-owned path), serving one directory, optionally behind Basic auth, logging every request with its
  Range and the bytes it sent, so tests and benchmarks count requests and bytes from the server's side.
- `DelayProxy`: a TCP proxy that adds a fixed round-trip latency without limiting throughput (each chunk is
  forwarded `rtt / 2` after it arrived, in each direction), to measure latency-bound behaviour on loopback.

Both are context managers that stop what they started, even when the body failed.
"""

from __future__ import annotations

import os
import queue
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, suppress
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
READY_TIMEOUT = 10.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_listening(port: int, proc: subprocess.Popen[bytes] | None = None, what: str = "server") -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with status {proc.returncode} before listening")
        with socket.socket() as probe, suppress(OSError):
            probe.connect(("127.0.0.1", port))
            return
        time.sleep(0.02)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {READY_TIMEOUT} s")


@dataclass(frozen=True)
class Logged:
    """One request as nginx logged it."""

    status: int
    method: str
    path: str
    range: str  # the Range header, "" when absent
    sent: int  # body bytes sent
    if_range: str
    if_none_match: str


# Tab-separated, one request a line: what `Logged` holds, in its order.
_LOG_FORMAT = (
    "$status\\t$request_method\\t$uri\\t$http_range\\t$body_bytes_sent\\t$http_if_range\\t$http_if_none_match"
)

_CONFIG = """
daemon off;
master_process off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 256; }}
http {{
    types {{ application/octet-stream img; }}
    default_type application/octet-stream;
    log_format counted escape=none '{log_format}';
    access_log {prefix}/access.log counted;
    client_body_temp_path {prefix}/client;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    sendfile on;
    keepalive_requests 10000;
    server {{
        listen 127.0.0.1:{port}{tls};
        root {root};
        {auth}
    }}
}}
"""


class Nginx:
    """nginx serving `root` on 127.0.0.1; `users` (name -> password) turns Basic auth on, `tls` (a PEM
    certificate and its key) HTTPS."""

    def __init__(
        self, root: Path, users: dict[str, str] | None = None, tls: tuple[Path, Path] | None = None
    ) -> None:
        self.root = Path(root).resolve()
        self.users = users or {}
        self.tls = tls
        self.port = 0
        self._stack = ExitStack()

    def url(self, name: str, userinfo: str = "") -> str:
        at = f"{userinfo}@" if userinfo else ""
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{at}127.0.0.1:{self.port}/{name}"

    def __enter__(self) -> Self:
        with ExitStack() as stack:
            prefix = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="docteur-nginx-")))
            auth = ""
            if self.users:
                htpasswd = prefix / "htpasswd"
                htpasswd.write_text("".join(f"{u}:{{PLAIN}}{p}\n" for u, p in self.users.items()))
                auth = f'auth_basic "docteur"; auth_basic_user_file {htpasswd};'
            tls = ""
            if self.tls:
                cert, key = self.tls
                tls = f" ssl;\n        ssl_certificate {cert};\n        ssl_certificate_key {key}"
            self.port = free_port()
            config = prefix / "nginx.conf"
            config.write_text(
                _CONFIG.format(
                    prefix=prefix, port=self.port, root=self.root, auth=auth, tls=tls, log_format=_LOG_FORMAT
                )
            )
            self._log = prefix / "access.log"
            proc = subprocess.Popen(
                [NGINX, "-p", str(prefix), "-e", str(prefix / "error.log"), "-c", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            stack.callback(_stop, proc)
            try:
                wait_listening(self.port, proc, "nginx")
            except RuntimeError as e:
                detail = proc.stderr.read().decode(errors="replace").strip() if proc.stderr else ""
                raise RuntimeError(f"{e}: {detail}") from None
            self._stack = stack.pop_all()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stack.close()

    def log(self) -> list[Logged]:
        """Every request so far, oldest first."""
        lines = self._log.read_text().splitlines() if self._log.exists() else []
        out = []
        for line in lines:
            status, method, path, rng, sent, if_range, inm = line.split("\t")
            dash = lambda s: "" if s == "-" else s  # noqa: E731 - nginx logs an absent header as "-"
            out.append(Logged(int(status), method, path, dash(rng), int(sent), dash(if_range), dash(inm)))
        return out

    def mark(self) -> int:
        """How many requests were logged so far: `since(mark)` gives the ones after."""
        return len(self.log())

    def since(self, mark: int) -> list[Logged]:
        return self.log()[mark:]


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGQUIT)  # graceful: finishes the requests in flight
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stderr:
        proc.stderr.close()


class DelayProxy:
    """127.0.0.1:port -> 127.0.0.1:target, adding `rtt` seconds of round-trip latency to every byte."""

    def __init__(self, target: int, rtt: float = 0.05) -> None:
        self.target = target
        self.delay = rtt / 2
        self.port = 0
        self._closing = threading.Event()
        self._threads: list[threading.Thread] = []
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def __enter__(self) -> Self:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self._spawn(self._accept)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._closing.set()
        with self._lock:
            for s in self._sockets:
                with suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
        for t in list(self._threads):
            t.join(timeout=5)
        self._listener.close()

    def _spawn(self, target: object, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while not self._closing.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            for s in (client, upstream):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._sockets += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                line: queue.Queue[tuple[float, bytes]] = queue.Queue()
                self._spawn(self._receive, src, line)
                self._spawn(self._deliver, line, dst)

    def _receive(self, src: socket.socket, line: queue.Queue[tuple[float, bytes]]) -> None:
        for chunk in _chunks(src):
            line.put((time.monotonic() + self.delay, chunk))
        line.put((time.monotonic() + self.delay, b""))

    def _deliver(self, line: queue.Queue[tuple[float, bytes]], dst: socket.socket) -> None:
        while True:
            due, chunk = line.get()
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            try:
                if not chunk:
                    dst.shutdown(socket.SHUT_WR)
                    return
                dst.sendall(chunk)
            except OSError:
                return


def _chunks(src: socket.socket) -> Iterator[bytes]:
    while True:
        try:
            chunk = src.recv(1 << 16)
        except OSError:
            return
        if not chunk:
            return
        yield chunk


def self_signed(where: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, made by openssl: (cert.pem, key.pem) under `where`."""
    cert, key = where / "cert.pem", where / "key.pem"
    subject = ["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"]
    files = ["-keyout", str(key), "-out", str(cert)]
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", *subject, *files],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


def served_copy(image: Path, root: Path, name: str = "disk.img") -> Path:
    """Put `image` where a server serving `root` finds it as /name (a hard link when possible)."""
    root.mkdir(parents=True, exist_ok=True)
    target = root / name
    with suppress(FileNotFoundError):
        target.unlink()
    try:
        os.link(image, target)
    except OSError:
        shutil.copyfile(image, target)
    return target
