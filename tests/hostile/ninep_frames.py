"""Malformed 9P frames at a running docteur-serve, one case a connection, every case judged.

A case opens a session in a dialect (version, attach, a file and a directory walked and opened), sends one
hostile frame, then a well-formed request (the sentinel). The server must, within the time limit, answer the
sentinel or close the connection; every reply it sends before must decode, carry a tag we sent, and come
once. A frame whose size promises more than was sent swallows the sentinel: the server's frame deadline has
to close it. Families: real frames mutated (bit flips, bytes set to edge values, a count or length field set
huge, a cut with the size fixed up, bytes appended, two frames spliced), truncated, oversized, wrong sizes,
unknown and reply types, odd tags, random bytes. A case is reproducible from (seed, number).
"""

from __future__ import annotations

import contextlib
import random
import socket
import struct
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from ninep.client import Client
from trees import Tree

from docteur.ninep import wire
from docteur.ninep.wire import Dialect, Message, MsgType, Qid

from .storm import GoodClient, RssSampler, expected, serving

MSIZE = 8192  # small, so that "larger than msize" is cheap to send
SENTINEL = 0xFFF0  # the sentinel's tag
FILE_FID, DIR_FID = 1, 2
NAMES = [b"README.md", b"big.bin", b"docs", b"guide", b"many", b"..", b".", b"", b"nope", b"a/b"]


@dataclass
class Case:
    number: int
    dialect: Dialect
    family: str
    frame: bytes


@dataclass
class Outcome:
    case: Case
    verdict: str  # "answered", "closed", or a failure: "hang", "garbled", "stray tag", "no session"
    replies: int = 0
    errors: int = 0

    @property
    def failed(self) -> bool:
        return self.verdict not in ("answered", "closed")


@dataclass
class Report:
    cases: int = 0
    verdicts: Counter[str] = field(default_factory=Counter)
    families: Counter[str] = field(default_factory=Counter)
    error_replies: int = 0
    failures: list[str] = field(default_factory=list)

    def add(self, outcome: Outcome) -> None:
        self.cases += 1
        self.verdicts[outcome.verdict] += 1
        self.families[outcome.case.family] += 1
        self.error_replies += outcome.errors
        if outcome.failed and len(self.failures) < 20:
            c = outcome.case
            self.failures.append(f"case {c.number} ({c.family}, {c.dialect.value}): {outcome.verdict}")

    def summary(self) -> str:
        verdicts = ", ".join(f"{k} {v}" for k, v in sorted(self.verdicts.items()))
        head = f"{self.cases} malformed frames ({len(self.families)} families)"
        return f"{head}: {verdicts}; {self.error_replies} error replies"


# -- frames -------------------------------------------------------------------------------------------


def _frame(dialect: Dialect, kind: MsgType, tag: int, **args: wire.Value) -> bytes:
    return wire.encode(Message(kind, tag, **args), dialect)


def _real(rng: random.Random, dialect: Dialect) -> bytes:
    """A well-formed request of this dialect, aimed at the session's fids (or at none)."""
    fid = rng.choice([0, FILE_FID, DIR_FID, 7, wire.NOFID])
    tag = rng.randrange(1, 1000)
    choices: list[Callable[[], bytes]] = [
        lambda: _frame(
            dialect,
            MsgType.TWALK,
            tag,
            fid=fid,
            newfid=rng.choice([3, 4, 0, FILE_FID]),
            wnames=rng.sample(NAMES, rng.randrange(4)),
        ),
        lambda: _frame(
            dialect,
            MsgType.TREAD,
            tag,
            fid=fid,
            offset=rng.choice([0, 100, 1 << 40, 2**64 - 1]),
            count=rng.choice([0, 1, 100, MSIZE, 2**32 - 1]),
        ),
        lambda: _frame(dialect, MsgType.TCLUNK, tag, fid=fid),
        lambda: _frame(dialect, MsgType.TFLUSH, tag, oldtag=rng.randrange(1 << 16)),
        lambda: _frame(dialect, MsgType.TVERSION, tag, msize=MSIZE, version=dialect.value.encode()),
    ]
    if dialect is Dialect.L:
        choices += [
            lambda: _frame(dialect, MsgType.TGETATTR, tag, fid=fid, request_mask=0x7FF),
            lambda: _frame(
                dialect, MsgType.TREADDIR, tag, fid=fid, offset=rng.randrange(5), count=MSIZE - 11
            ),
            lambda: _frame(dialect, MsgType.TLOPEN, tag, fid=fid, flags=rng.choice([0, 1, 0o1000])),
            lambda: _frame(dialect, MsgType.TXATTRWALK, tag, fid=fid, newfid=5, name=b""),
            lambda: _frame(dialect, MsgType.TSTATFS, tag, fid=fid),
        ]
    else:
        choices += [
            lambda: _frame(dialect, MsgType.TSTAT, tag, fid=fid),
            lambda: _frame(dialect, MsgType.TOPEN, tag, fid=fid, mode=rng.choice([0, 1, 0x10])),
        ]
    # Any request of the dialect, its fields zero or empty.
    kind = rng.choice([k for k in wire.LAYOUTS[dialect] if k % 2 == 0])
    blank = {"b": 0, "w": 0, "d": 0, "q": 0, "s": b"", "D": b"", "W": [b"x"], "R": [], "Q": Qid(0, 0, 0)}
    stat = wire.Stat(0, 0, Qid(0, 0, 0), 0, 0, 0, 0, b"", b"", b"", b"")
    args = {name: stat if code == "S" else blank[code] for name, code in wire.layout(dialect, kind)}
    choices.append(lambda: _frame(dialect, kind, tag, **args))
    return rng.choice(choices)()


def _sized(body: bytes) -> bytes:
    """Type, tag and fields with the size prefix that fits them."""
    return struct.pack("<I", 4 + len(body)) + body


def _mutated(rng: random.Random, frame: bytes, family: str) -> bytes:
    data = bytearray(frame)
    if family == "flip":
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    elif family == "edge_bytes":
        for _ in range(rng.randint(1, 3)):
            data[rng.randrange(4, len(data))] = rng.choice([0, 1, 0x7F, 0x80, 0xFF])
    elif family == "huge_field" and len(data) > 9:
        at = rng.randrange(7, len(data) - 1)
        width = 4 if at + 4 <= len(data) and rng.random() < 0.5 else 2
        data[at : at + width] = b"\xff" * width
    elif family == "cut_fixed":
        return _sized(bytes(data[4 : rng.randrange(5, len(data))]))
    elif family == "appended":
        return _sized(bytes(data[4:]) + rng.randbytes(rng.randint(1, 64)))
    elif family == "truncated":
        return bytes(data[: rng.randrange(1, len(data))])
    elif family == "oversized":
        return struct.pack("<I", MSIZE + rng.randint(1, 1 << 20)) + bytes(data[4:])
    elif family == "wrong_size":
        size = rng.choice([0, 1, 4, 6, 7, len(data) - 1, len(data) + 1, len(data) + 100, 2**32 - 1])
        data[:4] = struct.pack("<I", size)
    elif family == "type":
        known = {int(t) for t in MsgType}
        data[4] = rng.choice([*(t for t in range(256) if t not in known), 6, 7, 101, 106, 107, 117])
    elif family == "tag":
        data[5:7] = struct.pack("<H", rng.choice([wire.NOTAG, SENTINEL, 0, 1, rng.randrange(1 << 16)]))
    elif family == "random":
        if rng.random() < 0.3:
            return rng.randbytes(rng.randint(1, 64))  # the size too
        return _sized(rng.randbytes(rng.randint(3, 200)))
    return bytes(data)


FAMILIES = (
    "flip",
    "edge_bytes",
    "huge_field",
    "cut_fixed",
    "appended",
    "splice",
    "truncated",
    "oversized",
    "wrong_size",
    "type",
    "tag",
    "random",
)


def case(seed: int, number: int) -> Case:
    rng = random.Random(f"{seed}:{number}")
    dialect = rng.choice(list(Dialect))
    family = FAMILIES[number % len(FAMILIES)]
    if family == "splice":
        a, b = _real(rng, dialect), _real(rng, dialect)
        frame = _sized(a[4 : rng.randrange(5, len(a) + 1)] + b[rng.randrange(7, len(b) + 1) :])
    else:
        frame = _mutated(rng, _real(rng, dialect), family)
    return Case(number, dialect, family, frame)


# -- judging ------------------------------------------------------------------------------------------


def _setup(dialect: Dialect) -> list[bytes]:
    """Version, attach, and a file and a directory walked and opened: the fids a hostile frame may hit."""
    attach: dict[str, wire.Value] = {"fid": 0, "afid": wire.NOFID, "uname": b"x", "aname": b""}
    if dialect is not Dialect.P9:
        attach["n_uname"] = wire.NONUNAME
    opening = MsgType.TLOPEN if dialect is Dialect.L else MsgType.TOPEN
    mode = {"flags": 0} if dialect is Dialect.L else {"mode": 0}
    return [
        _frame(dialect, MsgType.TVERSION, wire.NOTAG, msize=MSIZE, version=dialect.value.encode()),
        _frame(dialect, MsgType.TATTACH, 1, **attach),
        _frame(dialect, MsgType.TWALK, 2, fid=0, newfid=FILE_FID, wnames=[b"README.md"]),
        _frame(dialect, opening, 3, fid=FILE_FID, **mode),
        _frame(dialect, MsgType.TWALK, 4, fid=0, newfid=DIR_FID, wnames=[b"docs"]),
        _frame(dialect, opening, 5, fid=DIR_FID, **mode),
    ]


def _sentinel(dialect: Dialect) -> bytes:
    if dialect is Dialect.L:
        return _frame(dialect, MsgType.TGETATTR, SENTINEL, fid=0, request_mask=0x7FF)
    return _frame(dialect, MsgType.TSTAT, SENTINEL, fid=0)


class _Replies:
    """Frames from the server, or the end of the connection."""

    def __init__(self, sock: socket.socket, dialect: Dialect) -> None:
        self.sock, self.dialect, self.buffer = sock, dialect, b""

    def next(self, deadline: float) -> Message | None:
        """The next reply, or None once the server has closed; TimeoutError past the deadline."""
        while len(self.buffer) < 4 or len(self.buffer) < wire.frame_size(self.buffer[:4]):
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = self.sock.recv(1 << 16)
            except (ConnectionResetError, BrokenPipeError):
                return None
            if not chunk:
                return None
            self.buffer += chunk
        size = wire.frame_size(self.buffer[:4])
        frame, self.buffer = self.buffer[:size], self.buffer[size:]
        reply = wire.decode(frame, self.dialect)  # WireError: garbled
        if reply.type is MsgType.RVERSION:  # the same in every dialect; what follows is in the new one
            answer = reply.text("version").decode(errors="replace")
            self.dialect = next((d for d in Dialect if d.value == answer), Dialect.P9)
        return reply


def judge(address: str, one: Case, limit: float, patience: float) -> Outcome:
    """Run one case on a connection of its own. A frame may end exactly where the sentinel does, having
    swallowed it: the server then rightly waits for more. So after `patience` (more than the server's frame
    deadline, which closes a frame left half-sent) with neither an answer nor a close, a second sentinel
    goes; then there must be one or the other within `limit`."""
    setup = _setup(one.dialect)
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(limit)
        sock.connect(address)
        replies = _Replies(sock, one.dialect)
        deadline = time.monotonic() + limit
        for frame in setup:  # one at a time: an open may not overtake the walk that makes its fid
            sock.sendall(frame)
            reply = replies.next(deadline)
            if reply is None or reply.type in (MsgType.RLERROR, MsgType.RERROR):
                return Outcome(one, f"no session: {reply or 'closed'}")
        sentinel = _sentinel(one.dialect)
        sent = one.frame + sentinel
        tags = {wire.NOTAG, *range(1, len(setup))} | {
            int.from_bytes(sent[i : i + 2], "little") for i in range(len(sent) - 1)
        }
        outcome = Outcome(one, "closed")
        with contextlib.suppress(OSError):  # closed under us: judged below
            sock.sendall(sent)
        waited = time.monotonic() + patience
        try:
            while True:
                try:
                    reply = replies.next(min(waited, deadline))
                except TimeoutError:
                    if time.monotonic() >= deadline or waited >= deadline:
                        raise
                    waited = deadline
                    with contextlib.suppress(OSError):
                        sock.sendall(sentinel)
                    continue
                if reply is None:
                    break
                outcome.replies += 1
                outcome.errors += reply.type in (MsgType.RLERROR, MsgType.RERROR)
                if reply.tag not in tags:
                    outcome.verdict = "stray tag"
                    break
                if reply.tag == SENTINEL:  # answered, an error or not (the frame may have ended the session)
                    outcome.verdict = "answered"
                    break
        except TimeoutError:
            outcome.verdict = "hang"
        except wire.WireError:
            outcome.verdict = "garbled"
        return outcome


def campaign(
    address: str, seed: int, numbers: Iterable[int], *, frame_timeout: float, threads: int = 16
) -> Iterable[Outcome]:
    """Judge the cases `numbers` of campaign `seed` at a server with that frame deadline, `threads` at a
    time, in order."""
    limit, patience = frame_timeout + 10, frame_timeout + 2
    with ThreadPoolExecutor(threads) as pool:
        yield from pool.map(lambda n: judge(address, case(seed, n), limit, patience), numbers)


@dataclass
class Run:
    report: Report
    alive: bool  # the server process, after every case
    good_ops: int
    good_errors: list[str]  # what the well-behaved client beside the campaign saw go wrong
    after: list[str]  # files a fresh session read wrong after the campaign
    rss_start_kb: int
    rss_peak_kb: int
    log: str

    def problems(self, rss_growth_mib: int) -> list[str]:
        found = [*self.report.failures, *self.good_errors, *self.after]
        if not self.alive:
            found.append("the server died")
        if self.rss_peak_kb - self.rss_start_kb > rss_growth_mib << 10:
            found.append(f"server RSS grew by more than {rss_growth_mib} MiB")
        if "Traceback" in self.log or "Task exception" in self.log:
            found.append("a traceback in the server's log")
        return found

    def summary(self) -> str:
        return (
            f"{self.report.summary()}; well-behaved client beside them: {self.good_ops} answers, "
            f"{len(self.good_errors)} errors; server RSS {self.rss_start_kb >> 10} -> peak "
            f"{self.rss_peak_kb >> 10} MiB"
        )


def run(image: Path, scratch: Path, tree: Tree, *, seed: int, count: int, frame_timeout: float = 1.0) -> Run:
    """docteur-serve over `image` (which holds `tree`), `count` cases at it, a good client beside them."""
    sock, log = scratch / "frames.sock", scratch / "frames.log"
    files, dirs = expected(tree)
    with serving(image, sock, log, "--frame-timeout", str(frame_timeout)) as proc:
        sampler = RssSampler(proc.pid)
        good = GoodClient(str(sock), files, dirs, seed)
        sampler.start()
        good.start()
        report = Report()
        try:
            for outcome in campaign(str(sock), seed, range(count), frame_timeout=frame_timeout):
                report.add(outcome)
        finally:
            good.stop()
            sampler.stop()
        alive = proc.poll() is None
        with Client(str(sock), timeout=10) as fresh:
            fresh.version("9P2000.L")
            fresh.attach()
            after = [f"read /{p.decode()}: wrong bytes" for p, data in files.items() if fresh.read(p) != data]
    return Run(
        report, alive, good.ops, good.errors, after, sampler.start_kb, sampler.peak_kb, log.read_text()
    )
