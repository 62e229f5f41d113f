"""Hostile 9P traffic at a running docteur-serve while a well-behaved client checks every answer.

Attacks, chosen by a seeded generator: frames with bad or huge sizes, truncated frames then a hang-up,
random bytes, unknown types, well-formed messages with random fields (unknown fids, tags in use, absurd
counts and offsets), fid exhaustion, huge msize, version games, Tflush storms, reads whose replies are never
read, bursts of connections and connections opened and dropped. Meanwhile one client on its own connection
reads files and lists directories, and the server's RSS is sampled.
"""

from __future__ import annotations

import contextlib
import errno
import random
import socket
import struct
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ninep.client import Client
from trees import DIR, Tree

from docteur.ninep import wire
from docteur.ninep.wire import Dialect, Message, MsgType, Qid

BIN = Path(sys.executable).parent
ATTACK_TIMEOUT = 2.0  # seconds any one socket operation of an attack may wait


@contextlib.contextmanager
def serving(image: Path, sock: Path, log: Path, *options: str) -> Iterator[subprocess.Popen[bytes]]:
    """docteur-serve on a unix socket, its log in a file (a storm logs too much for an unread pipe)."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(BIN / "docteur-serve"), str(image), "--listen", f"unix:{sock}", *options], stderr=out
        )
    try:
        deadline = time.monotonic() + 20
        while not sock.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"docteur-serve did not start: {log.read_text()}")
            time.sleep(0.02)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


@dataclass
class StormReport:
    frames: int = 0  # hostile frames, the fid-exhausting walks not counted
    fid_walks: int = 0  # fids the exhaustions got (one walk each)
    connections: int = 0
    attacks: Counter[str] = field(default_factory=Counter)
    good_ops: int = 0
    good_errors: list[str] = field(default_factory=list)
    rss_start_kb: int = 0
    rss_peak_kb: int = 0
    rss_end_kb: int = 0

    def summary(self) -> str:
        return (
            f"{self.frames} hostile frames on {self.connections} connections "
            f"({', '.join(f'{k} {v}' for k, v in sorted(self.attacks.items()))}) "
            f"and {self.fid_walks} fids granted before EMFILE; "
            f"well-behaved client: {self.good_ops} answers, {len(self.good_errors)} errors; "
            f"server RSS {self.rss_start_kb // 1024} -> peak {self.rss_peak_kb // 1024} -> "
            f"{self.rss_end_kb // 1024} MiB"
        )


class _Conn:
    """A raw socket to the server; every failure of the peer (hang-up, reset, silence) is expected."""

    def __init__(self, address: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(ATTACK_TIMEOUT)
        self.sock.connect(address)

    def send(self, data: bytes) -> bool:
        try:
            self.sock.sendall(data)
            return True
        except OSError:
            return False

    def drain(self, wait: float = 0.0) -> None:
        """Read whatever replies are there (the server stops serving a client that never reads)."""
        self.sock.settimeout(wait)
        with contextlib.suppress(OSError):
            while self.sock.recv(1 << 16):
                pass
        self.sock.settimeout(ATTACK_TIMEOUT)

    def close(self) -> None:
        self.sock.close()


def _frame(msg: Message, dialect: Dialect = Dialect.L) -> bytes:
    return wire.encode(msg, dialect)


def _version(dialect: Dialect = Dialect.L, msize: int = 65536) -> bytes:
    return _frame(Message(MsgType.TVERSION, wire.NOTAG, msize=msize, version=dialect.value.encode()))


def _attach(fid: int = 0) -> bytes:
    return _frame(Message(MsgType.TATTACH, 1, fid=fid, afid=wire.NOFID, uname=b"x", aname=b"", n_uname=0))


class Storm:
    def __init__(
        self, address: str, rng: random.Random, names: list[bytes], big: bytes, max_fids: int
    ) -> None:
        self.address = address
        self.rng = rng
        self.names = names  # paths the tree holds, to make walks that go somewhere
        self.big = big  # a file larger than msize, for reads never collected
        self.max_fids = max_fids
        self.report = StormReport()

    # -- plumbing -----------------------------------------------------------------------------------

    def _open(self, session: bool = True) -> _Conn | None:
        try:
            conn = _Conn(self.address)
        except OSError:
            return None
        self.report.connections += 1
        if session:
            self._send(conn, _version() + _attach())
            conn.drain(0.05)
        return conn

    def _send(self, conn: _Conn, *frames: bytes) -> bool:
        self.report.frames += len(frames)
        return conn.send(b"".join(frames))

    # -- attacks ------------------------------------------------------------------------------------

    def bad_size(self) -> None:
        conn = self._open(self.rng.random() < 0.5)
        if conn:
            size = self.rng.choice([0, 1, 4, 6, (1 << 20) + 1, 0xFFFFFFFF, self.rng.randrange(1 << 32)])
            self._send(conn, struct.pack("<IBH", size, MsgType.TREAD, 1) + self.rng.randbytes(16))
            conn.drain(0.05)
            conn.close()

    def truncated(self) -> None:
        conn = self._open()
        if conn:
            whole = _frame(Message(MsgType.TWALK, 5, fid=0, newfid=1, wnames=[b"docs", b"guide"]))
            self._send(conn, whole[: self.rng.randrange(1, len(whole))])
            conn.close()

    def garbage(self) -> None:
        conn = self._open(self.rng.random() < 0.7)
        if conn:
            frames = []
            for _ in range(self.rng.randint(1, 20)):
                body = self.rng.randbytes(self.rng.randrange(64))
                frames.append(struct.pack("<I", 4 + len(body)) + body)
            self._send(conn, *frames)
            conn.drain(0.05)
            conn.close()

    def unknown_types(self) -> None:
        conn = self._open()
        if conn:
            known = {int(t) for t in MsgType}
            frames = []
            for tag in range(self.rng.randint(1, 30)):
                kind = self.rng.choice([t for t in range(256) if t not in known] + [6, 106, 101, 117, 7])
                body = self.rng.randbytes(self.rng.randrange(32))
                frames.append(struct.pack("<IBH", 7 + len(body), kind, tag + 10) + body)
            self._send(conn, *frames)
            conn.drain(0.1)
            conn.close()

    def random_messages(self) -> None:
        """Well-formed requests of every type with random fields: unknown fids, absurd counts, odd names."""
        dialect = self.rng.choice(list(Dialect))
        conn = self._open(False)
        if conn:
            frames = [
                _version(dialect),
                _frame(Message(MsgType.TATTACH, 1, **_attach_args(dialect)), dialect),
            ]
            kinds = [t for t in wire.LAYOUTS[dialect] if t.name.startswith("T")]
            for tag in range(2, self.rng.randint(3, 40)):
                kind = self.rng.choice(kinds)
                args = {name: self._value(code, dialect) for name, code in wire.layout(dialect, kind)}
                with contextlib.suppress(ValueError, struct.error):
                    frames.append(_frame(Message(kind, tag, **args), dialect))
            self._send(conn, *frames)
            conn.drain(0.1)
            conn.close()

    def _value(self, code: str, dialect: Dialect) -> wire.Value:
        rng = self.rng
        if code in "bwdq":
            bits = {"b": 8, "w": 16, "d": 32, "q": 64}[code]
            return rng.choice([0, 1, 2, (1 << bits) - 1, rng.randrange(1 << bits), rng.randrange(8)])
        if code == "s":
            return rng.choice(
                [b"", b".", b"..", b"a/b", b"\0", rng.choice(self.names), rng.randbytes(rng.randrange(40))]
            )
        if code == "Q":
            return Qid(rng.randrange(256), rng.randrange(1 << 32), rng.randrange(1 << 64))
        if code == "D":
            return rng.randbytes(rng.randrange(100))
        if code == "W":
            return [rng.choice([*self.names, b"..", b"."]).split(b"/")[0] for _ in range(rng.randrange(20))]
        if code == "R":
            return [Qid(0, 0, rng.randrange(1 << 64)) for _ in range(rng.randrange(4))]
        return wire.Stat(0, 0, Qid(0, 0, 0), rng.randrange(1 << 32), 0, 0, 0, b"x", b"", b"", b"")

    def fid_exhaustion(self) -> None:
        """Walks to new fids until the server refuses (EMFILE), then a hang-up that frees them all."""
        try:
            with Client(self.address, timeout=30) as client:
                self.report.connections += 1
                client.version("9P2000.L")
                client.attach()
                self.report.fid_walks += exhaust_fids(client, self.max_fids + 50)
        except OSError:
            pass

    def huge_msize(self) -> None:
        conn = self._open(False)
        if conn:
            self._send(conn, _version(msize=0xFFFFFFFF), _attach())
            conn.drain(0.05)
            big = 2 << 20
            self._send(conn, struct.pack("<IBH", big, MsgType.TWRITE, 3) + bytes(4096))
            conn.drain(0.05)
            conn.close()

    def version_games(self) -> None:
        conn = self._open(False)
        if conn:
            versions = [
                b"9P2000.L",
                b"9P2000.u",
                b"9P2000",
                b"9P2001.x",
                b"9P",
                b"",
                b"unknown",
                self.rng.randbytes(10),
            ]
            frames = []
            for tag in range(self.rng.randint(2, 8)):
                version = self.rng.choice(versions)
                msize = self.rng.choice([0, 7, 4095, 4096, 8192, 1 << 20, 0xFFFFFFFF])
                frames.append(_frame(Message(MsgType.TVERSION, tag, msize=msize, version=version)))
                frames.append(_frame(Message(MsgType.TGETATTR, tag + 100, fid=0, request_mask=0x7FF)))
            self._send(conn, *frames)
            conn.drain(0.05)
            conn.close()

    def tags_in_flight(self) -> None:
        """The same tag twice while the first is pending, and Tflush of tags that do not exist."""
        conn = self._open()
        if conn:
            walk = _frame(Message(MsgType.TWALK, 7, fid=0, newfid=9, wnames=[self.names[0].split(b"/")[0]]))
            flushes = [
                _frame(Message(MsgType.TFLUSH, 8, oldtag=self.rng.randrange(1 << 16))) for _ in range(20)
            ]
            self._send(conn, walk, walk, *flushes)
            conn.drain(0.05)
            conn.close()

    def unread_replies(self) -> None:
        conn = self._open(False)
        if conn:
            frames = [_version(msize=1 << 20), _attach()]
            frames.append(_frame(Message(MsgType.TWALK, 2, fid=0, newfid=1, wnames=self.big.split(b"/"))))
            frames.append(_frame(Message(MsgType.TLOPEN, 3, fid=1, flags=0)))
            frames += [
                _frame(Message(MsgType.TREAD, 10 + i, fid=1, offset=0, count=1 << 20)) for i in range(60)
            ]
            self._send(conn, *frames)
            time.sleep(0.2)
            conn.close()

    def burst(self) -> None:
        """Many connections at once, more than the server accepts, each dropped half-way through a frame."""
        conns = [c for c in (self._open(False) for _ in range(self.rng.randint(20, 100))) if c]
        for conn in conns:
            self._send(conn, _version()[:5])
        for conn in conns:
            conn.close()

    def drop(self) -> None:
        for _ in range(self.rng.randint(5, 30)):
            conn = self._open(False)
            if conn:
                conn.close()

    ATTACKS: tuple[str, ...] = (
        "bad_size",
        "truncated",
        "garbage",
        "unknown_types",
        "random_messages",
        "huge_msize",
        "version_games",
        "tags_in_flight",
        "unread_replies",
        "burst",
        "drop",
    )

    def run(self, frames: int, connections: int, fid_exhaustions: int) -> StormReport:
        for _ in range(fid_exhaustions):
            self.fid_exhaustion()
            self.report.attacks["fid_exhaustion"] += 1
        while self.report.frames < frames or self.report.connections < connections:
            name = self.rng.choice(self.ATTACKS)
            getattr(self, name)()
            self.report.attacks[name] += 1
        return self.report


def exhaust_fids(client: Client, most: int) -> int:
    """Walk to new fids, 200 at a time, until the server refuses one (EMFILE) or `most` were asked for;
    return how many it granted."""
    granted = 0
    for start in range(0, most, 200):
        tags = [
            client.send(MsgType.TWALK, fid=0, newfid=1000 + i, wnames=[])
            for i in range(start, min(start + 200, most))
        ]
        replies = [client.recv() for _ in tags]
        refused = [r for r in replies if r.type is not MsgType.RWALK]
        granted += len(replies) - len(refused)
        if refused:
            assert all(r.type is MsgType.RLERROR and r.num("ecode") == errno.EMFILE for r in refused), (
                refused[0]
            )
            return granted
    return granted


def _attach_args(dialect: Dialect) -> dict[str, wire.Value]:
    args: dict[str, wire.Value] = {"fid": 0, "afid": wire.NOFID, "uname": b"x", "aname": b""}
    if dialect is not Dialect.P9:
        args["n_uname"] = 0
    return args


class GoodClient(threading.Thread):
    """Reads files and lists directories on its own connection until stopped; records every wrong answer."""

    def __init__(
        self, address: str, files: dict[bytes, bytes], dirs: dict[bytes, set[bytes]], seed: int
    ) -> None:
        super().__init__(daemon=True)
        self.client = Client(address, timeout=10)
        self.client.version("9P2000.L")
        self.client.attach()
        self.files, self.dirs = files, dirs
        self.rng = random.Random(seed)
        self.stopping = threading.Event()
        self.ops = 0
        self.errors: list[str] = []

    def run(self) -> None:
        paths, dirs = sorted(self.files), sorted(self.dirs)
        while not self.stopping.is_set() and len(self.errors) < 10:
            try:
                if self.rng.random() < 0.2:
                    d = self.rng.choice(dirs)
                    names = {n for n, _, _ in self.client.listdir(d)} - {b".", b".."}
                    if names != self.dirs[d]:
                        self.errors.append(f"listdir /{d.decode()}: wrong names")
                else:
                    p = self.rng.choice(paths)
                    if self.client.read(p) != self.files[p]:
                        self.errors.append(f"read /{p.decode()}: wrong bytes")
                self.ops += 1
            except Exception as e:
                self.errors.append(f"{type(e).__name__}: {e}")

    def stop(self) -> None:
        self.stopping.set()
        self.join(30)
        self.client.close()


class RssSampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.start_kb = self.peak_kb = rss_kb(pid)
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(0.05):
            with contextlib.suppress(OSError):
                self.peak_kb = max(self.peak_kb, rss_kb(self.pid))

    def stop(self) -> None:
        self.stopping.set()
        self.join(5)


def expected(tree: Tree) -> tuple[dict[bytes, bytes], dict[bytes, set[bytes]]]:
    """What a client must find in `tree`: each file's bytes, each directory's names."""
    files = {p: content for p, (mode, content) in tree.items() if mode != DIR}
    dirs: dict[bytes, set[bytes]] = {}
    for path, (mode, _) in tree.items():
        parts = path.split(b"/")
        for i in range(len(parts)):
            dirs.setdefault(b"/".join(parts[:i]), set()).add(parts[i])
        if mode == DIR:
            dirs.setdefault(path, set())
    return files, dirs


def storm(
    address: str,
    pid: int,
    tree: Tree,
    *,
    seed: int,
    frames: int,
    connections: int,
    max_fids: int,
    big: bytes,
    fid_exhaustions: int = 1,
) -> StormReport:
    """Run the storm at the server `pid` listening at `address`, which serves `tree`."""
    files, dirs = expected(tree)
    sampler = RssSampler(pid)
    good = GoodClient(address, files, dirs, seed)
    sampler.start()
    good.start()
    attacker = Storm(address, random.Random(seed), sorted(files), big, max_fids)
    try:
        report = attacker.run(frames, connections, fid_exhaustions)
    finally:
        good.stop()
        sampler.stop()
    report.good_ops, report.good_errors = good.ops, good.errors
    report.rss_start_kb, report.rss_peak_kb, report.rss_end_kb = (
        sampler.start_kb,
        sampler.peak_kb,
        rss_kb(pid),
    )
    return report
