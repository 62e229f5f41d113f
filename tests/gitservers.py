"""Real Git servers on 127.0.0.1 for the tests, and small repositories for them to serve.

Every server is a context manager: it picks an ephemeral port, waits until it is really listening, and on exit
kills its processes, per-connection children included (or shuts its threads down), even if the test failed.
"""

import abc
import base64
import getpass
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import ExitStack, suppress
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import NamedTuple, Self
from urllib.parse import unquote, urlsplit

READY_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0
COMMAND_TIMEOUT = 30.0  # one git, ssh-keygen or CGI run
SSHD = "/usr/sbin/sshd"

# Git must not read the developer's or the machine's configuration (signing, default branch, helpers...).
GIT_ISOLATION = {"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_TERMINAL_PROMPT": "0"}


class _Server(abc.ABC):
    """Context manager whose resources are released in reverse order, even when starting fails half-way."""

    _stack: ExitStack

    @abc.abstractmethod
    def _start(self, stack: ExitStack) -> None:
        """Acquire the server's resources, registering how to release each one on `stack`."""

    def __enter__(self) -> Self:
        with ExitStack() as stack:
            self._start(stack)
            self._stack = stack.pop_all()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stack.close()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def descendants(pid: int) -> list[int]:
    """Every process below `pid`, including those that left its session (sshd's per-connection children)."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with suppress(OSError):
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
    found: list[int] = []
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier}
        found += frontier
    return found


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie waiting for its parent to reap it does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _stop(proc: subprocess.Popen[bytes]) -> None:
    # Signal the process group (per-connection children) and every descendant (sshd's leave the group).
    family = [proc.pid, *descendants(proc.pid)]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        for pid in family:
            with suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + STOP_TIMEOUT
        while proc.poll() is None or any(map(alive, family[1:])):
            if time.monotonic() > deadline:
                break
            time.sleep(0.01)
        else:
            return
    raise RuntimeError(f"processes {family} outlived SIGKILL")


def _spawn_listening(
    stack: ExitStack, argv: Callable[[int], list[str]], log: Path, ready: Callable[[int], str]
) -> tuple[subprocess.Popen[bytes], int]:
    """Start `argv(port)` on a free port and return once its log says `ready(port)`.

    The port is probed free then handed over, so another process may take it in between: retry on a new one.
    """
    for _ in range(5):
        port = _free_port()
        with log.open("wb") as out:
            proc = subprocess.Popen(
                argv(port), stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True
            )
        stack.callback(_stop, proc)
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            exited = proc.poll() is not None
            text = log.read_text(errors="replace")
            if ready(port) in text and not exited:
                return proc, port
            if exited:
                break
            time.sleep(0.02)
        else:
            raise TimeoutError(f"{argv(port)[0]} not ready after {READY_TIMEOUT} s:\n{text}")
        if "already in use" not in text:
            raise RuntimeError(f"{argv(port)[0]} exited with {proc.returncode}:\n{text}")
    raise RuntimeError(f"no free port for {argv(0)[0]}")


class GitDaemon(_Server):
    """`git daemon` exporting every repository under `root` at git://127.0.0.1:PORT/NAME."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.log = Path()

    def _start(self, stack: ExitStack) -> None:
        self.log = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="git-daemon-"))) / "daemon.log"
        self.process, self.port = _spawn_listening(
            stack,
            lambda port: [
                "git",
                "daemon",
                "--verbose",
                "--reuseaddr",
                f"--base-path={self.root}",
                "--export-all",
                "--listen=127.0.0.1",
                f"--port={port}",
            ],
            self.log,
            lambda port: "Ready to rumble",
        )

    def url(self, name: str) -> str:
        return f"git://127.0.0.1:{self.port}/{name}"


class HttpRequest(NamedTuple):
    """One request as the HTTP server answered it."""

    method: str
    target: str
    status: int
    headers: dict[str, str]


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, root: Path, auth: tuple[str, str] | None) -> None:
        super().__init__(("127.0.0.1", 0), _GitCgiHandler)
        self.root = root
        self.auth = auth
        self.requests: list[HttpRequest] = []


# Request headers a CGI script gets through dedicated variables, or must never see.
_NOT_FORWARDED = {"authorization", "content-type", "content-length", "transfer-encoding"}


class _GitCgiHandler(BaseHTTPRequestHandler):
    """Runs `git http-backend` as a CGI script for every request, behind optional HTTP Basic auth."""

    server: _HttpServer
    protocol_version = "HTTP/1.1"
    timeout = COMMAND_TIMEOUT

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        self.server.requests.append(
            HttpRequest(self.command, self.path, int(code), dict(self.headers.items()))
        )

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return self._dechunk()
        return self.rfile.read(int(self.headers.get("Content-Length", 0)))

    def _dechunk(self) -> bytes:
        # git switches to chunked requests once a body outgrows http.postBuffer; CGI wants it whole.
        chunks = []
        while size := int(self.rfile.readline().split(b";")[0], 16):
            chunks.append(self.rfile.read(size))
            self.rfile.readline()
        while self.rfile.readline().strip():
            pass
        return b"".join(chunks)

    def _user(self) -> str | None:
        scheme, _, credentials = self.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return None
        user, _, password = base64.b64decode(credentials).decode().partition(":")
        return user if (user, password) == self.server.auth else None

    def _serve(self) -> None:
        # Read the body first: on a kept-alive connection, unread bytes would be taken for the next request.
        body = self._body()
        user = self._user()
        if self.server.auth is not None and user is None:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="docteur tests"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        target = urlsplit(self.path)
        env = {
            "PATH": os.environ["PATH"],
            "GIT_PROJECT_ROOT": str(self.server.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "GATEWAY_INTERFACE": "CGI/1.1",
            "SERVER_PROTOCOL": self.request_version,
            "REQUEST_METHOD": self.command,
            "PATH_INFO": unquote(target.path),
            "QUERY_STRING": target.query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_ADDR": self.client_address[0],
            **GIT_ISOLATION,
            # http-backend inflates gzip bodies itself (HTTP_CONTENT_ENCODING) and reads HTTP_GIT_PROTOCOL.
            **{
                "HTTP_" + name.upper().replace("-", "_"): value
                for name, value in self.headers.items()
                if name.lower() not in _NOT_FORWARDED
            },
        }
        if user is not None:
            env |= {"REMOTE_USER": user, "AUTH_TYPE": "Basic"}
        cgi = subprocess.run(
            ["git", "http-backend"], input=body, capture_output=True, env=env, timeout=COMMAND_TIMEOUT
        )
        headers, payload = _parse_cgi(cgi.stdout)
        if not headers:
            headers, payload = [("Status", "500"), ("Content-Type", "text/plain")], cgi.stderr
        status = next((int(value.split()[0]) for name, value in headers if name.lower() == "status"), 200)
        self.send_response(status)
        for name, value in headers:
            if name.lower() not in ("status", "content-length"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def _parse_cgi(output: bytes) -> tuple[list[tuple[str, str]], bytes]:
    """Split a CGI script's output into its header fields and the body after the blank line."""
    headers = []
    rest = output
    while rest:
        line, _, rest = rest.partition(b"\n")
        line = line.rstrip(b"\r")
        if not line:
            break
        name, _, value = line.decode("latin-1").partition(":")
        headers.append((name.strip(), value.strip()))
    return headers, rest


class GitHttp(_Server):
    """`git http-backend` (smart HTTP) for every repository under `root`, at http://127.0.0.1:PORT/NAME.

    With `auth=(user, password)`, every request without those HTTP Basic credentials gets a 401.
    `requests` records every request answered: method, target, status and request headers.
    """

    def __init__(self, root: Path, auth: tuple[str, str] | None = None) -> None:
        self.root = Path(root).resolve()
        self.auth = auth
        self.port = 0
        self.requests: list[HttpRequest] = []

    def _start(self, stack: ExitStack) -> None:
        server = _HttpServer(self.root, self.auth)
        stack.callback(server.server_close)
        self.port = server.server_address[1]
        self.requests = server.requests
        thread = threading.Thread(
            target=server.serve_forever, args=(0.05,), name=f"git-http-{self.port}", daemon=True
        )
        thread.start()
        stack.callback(thread.join, STOP_TIMEOUT)
        stack.callback(server.shutdown)

    def url(self, name: str, *, user: str | None = None, password: str | None = None) -> str:
        credentials = f"{user}:{password}@" if user is not None else ""
        return f"http://{credentials}127.0.0.1:{self.port}/{name}"


def _keygen(path: Path) -> Path:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.name, "-f", str(path)],
        check=True,
        capture_output=True,
        timeout=COMMAND_TIMEOUT,
    )
    return path


class SshServer(_Server):
    """OpenSSH `sshd` on 127.0.0.1 letting the current user in with a generated key; git runs as that user.

    Clients reach ROOT/NAME at `url(NAME)` (ssh://USER@ALIAS/ROOT/NAME) or `scp_url(NAME)`
    (USER@ALIAS:/ROOT/NAME) under `client_env`: an `ssh` wrapper with its own config (alias, port, key, no
    host-key check, batch mode), first in PATH and named by GIT_SSH_COMMAND. git honours either; dulwich's
    default vendor runs `ssh` from PATH (dulwich.client ignores GIT_SSH_COMMAND unless it is passed as
    `ssh_command`). `stranger_env` is the same with a key that sshd refuses.
    """

    alias = "docteur-sshd"

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self.user = getpass.getuser()
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.client_env: dict[str, str] = {}
        self.stranger_env: dict[str, str] = {}
        self.log = Path()

    def _start(self, stack: ExitStack) -> None:
        home = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sshd-")))
        if os.geteuid() == 0:
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation chroot
        identity = _keygen(home / "id_ed25519")
        (home / "authorized_keys").write_bytes(identity.with_suffix(".pub").read_bytes())
        config = home / "sshd_config"
        config.write_text(
            f"ListenAddress 127.0.0.1\n"
            f"HostKey {_keygen(home / 'host_ed25519')}\n"
            f"AuthorizedKeysFile {home / 'authorized_keys'}\n"
            "PidFile none\n"
            "StrictModes no\n"
            "PermitRootLogin prohibit-password\n"
            "PubkeyAuthentication yes\n"
            "PasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\n"
            "UsePAM no\n"
            # Lets clients ask for Git protocol v2, as on real hosts.
            "AcceptEnv GIT_PROTOCOL\n"
        )
        self.log = home / "sshd.log"
        self.process, self.port = _spawn_listening(
            stack,
            lambda port: [SSHD, "-D", "-e", "-f", str(config), "-p", str(port)],
            self.log,
            lambda port: f"Server listening on 127.0.0.1 port {port}.",
        )
        self.client_env = self._client(home / "client", identity)
        self.stranger_env = self._client(home / "stranger", _keygen(home / "stranger_ed25519"))

    def _client(self, directory: Path, identity: Path) -> dict[str, str]:
        (directory / "bin").mkdir(parents=True)
        config = directory / "ssh_config"
        config.write_text(
            f"Host {self.alias}\n"
            "  HostName 127.0.0.1\n"
            f"  Port {self.port}\n"
            f"  IdentityFile {identity}\n"
            "  IdentitiesOnly yes\n"
            "  IdentityAgent none\n"
            "  StrictHostKeyChecking no\n"
            f"  UserKnownHostsFile {os.devnull}\n"
            "  BatchMode yes\n"
            "  ConnectTimeout 5\n"
            "  LogLevel ERROR\n"
        )
        wrapper = directory / "bin" / "ssh"
        wrapper.write_text(f'#!/bin/sh\nexec /usr/bin/ssh -F {config} "$@"\n')
        wrapper.chmod(0o755)
        return {"PATH": f"{wrapper.parent}{os.pathsep}{os.environ['PATH']}", "GIT_SSH_COMMAND": str(wrapper)}

    def url(self, name: str) -> str:
        return f"ssh://{self.user}@{self.alias}{self.root / name}"

    def scp_url(self, name: str) -> str:
        return f"{self.user}@{self.alias}:{self.root / name}"


class Executable(bytes):
    """Contents of a file committed with mode 100755."""


class Symlink(bytes):
    """Target of a symbolic link, committed with mode 120000."""


@dataclass(frozen=True)
class Repo:
    path: Path
    branch: str
    commits: tuple[str, ...]  # oldest first
    tag: str | None  # id of the annotated tag object

    @property
    def head(self) -> str:
        return self.commits[-1]


def _mode(content: bytes) -> str:
    if isinstance(content, Symlink):
        return "120000"
    return "100755" if isinstance(content, Executable) else "100644"


def _data(payload: bytes) -> bytes:
    return b"data %d\n%s\n" % (len(payload), payload)


def run_git(cwd: Path, *args: str, stdin: bytes = b"") -> str:
    out = subprocess.run(
        ["git", *args],
        input=stdin,
        cwd=cwd,
        capture_output=True,
        env={**os.environ, **GIT_ISOLATION},
        timeout=COMMAND_TIMEOUT,
    )
    if out.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed ({out.returncode}): {out.stderr.decode()}")
    return out.stdout.decode()


def make_repo(
    path: Path,
    files: Mapping[str, bytes],
    *,
    bare: bool = True,
    branch: str = "main",
    commits: int = 1,
    tag: str | None = None,
) -> Repo:
    """Create a repository whose `branch` holds `commits` commits, the last with exactly `files`.

    Commit k of n (from 1) has every path, a file holding the first k/n of its final bytes (symlinks keep
    their target), so each commit changes every file and older blobs are natural delta bases. Names and dates
    are fixed, so the ids are stable. `tag` names an annotated tag on the last commit.
    """
    if commits < 1:
        raise ValueError("a repository needs at least one commit")
    path = Path(path).resolve()
    path.mkdir(parents=True, exist_ok=True)
    run_git(path, "init", "-q", *(["--bare"] if bare else []), "-b", branch)
    # One fast-import stream writes every object; dates are part of it, so nothing depends on the clock.
    ref = b"refs/heads/" + branch.encode()
    stream = bytearray()
    for k in range(1, commits + 1):
        who = b"Docteur Tests <tests@docteur.invalid> %d +0000" % (1_700_000_000 + 60 * k)
        stream += b"commit %s\nauthor %s\ncommitter %s\n" % (ref, who, who)
        stream += _data(b"commit %d of %d\n" % (k, commits))
        stream += b"deleteall\n"
        for name, content in sorted(files.items()):
            version = content if isinstance(content, Symlink) else content[: len(content) * k // commits]
            stream += b"M %s inline %s\n" % (_mode(content).encode(), name.encode())
            stream += _data(version)
    if tag is not None:
        stream += b"tag %s\nfrom %s\ntagger %s\n" % (tag.encode(), ref, who)
        stream += _data(b"release %s\n" % tag.encode())
    run_git(path, "fast-import", "--quiet", stdin=bytes(stream))
    if not bare:
        run_git(path, "reset", "-q", "--hard")
    return Repo(
        path=path,
        branch=branch,
        commits=tuple(run_git(path, "rev-list", "--reverse", branch).split()),
        tag=run_git(path, "rev-parse", f"refs/tags/{tag}").strip() if tag is not None else None,
    )
