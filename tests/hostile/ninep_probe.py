"""The same judgement through 9P: a server over the image, a client reading everything it should hold.

Each answer is the expected one or an EIO error (the server's word for a corrupt image); a path below a
directory that failed may also be ENOENT (its walk stops early). Afterwards a new session must still work:
no corrupt image may take the server down.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from ninep.client import Client, Closed, P9Error
from ninep.conftest import running

import docteur
from docteur.errors import CorruptImageError
from docteur.git.objects import MODE_DIR, MODE_GITLINK, MODE_LINK
from docteur.ninep.tree import TreeFS
from docteur.ninep.wire import MsgType

from .corpus import Expected
from .oracle import MAX_OBJECT_SIZE, Verdict

TIMEOUT = 5.0
T = TypeVar("T")


def probe_9p(image: Path, expected: Expected, scratch: Path, verdict: Verdict) -> None:
    try:
        img = docteur.open(image, max_object_size=MAX_OBJECT_SIZE)
    except CorruptImageError:
        return  # judged by the API probe; docteur-serve refuses such an image at start
    sock = scratch / "9p.sock"
    sock.unlink(missing_ok=True)
    with img, running(TreeFS(img), sock) as served:
        try:
            with _session(served.path) as client:
                broken: set[bytes] = set()
                for path in sorted(expected.nodes):
                    _judge(verdict, client, expected, path, broken)
                for path in sorted(expected.fails):
                    _judge_hostile(verdict, client, path)
            with _session(served.path) as again:
                again.walk(b"")
        except (Closed, OSError) as e:
            if not isinstance(e, P9Error):
                verdict.bad(f"9p: server stopped answering: {type(e).__name__}: {e}")


def _session(path: str) -> Client:
    client = Client(path, timeout=TIMEOUT)
    client.version("9P2000.L")
    client.attach()
    return client


def _answer(verdict: Verdict, what: str, fn: Callable[[], T], lenient: bool) -> T | None:
    """fn()'s value, or None after judging its error reply."""
    try:
        return fn()
    except P9Error as e:
        if e.errno == errno.EIO or (lenient and e.errno == errno.ENOENT):
            verdict.rejected += 1
        else:
            verdict.bad(f"9p {what}: error {e.errno} ({e.strerror})")
        return None


def _judge(verdict: Verdict, client: Client, expected: Expected, path: bytes, broken: set[bytes]) -> None:
    node = expected.nodes[path]
    lenient = any(path.startswith(b + b"/") for b in broken)
    shown = "/" + path.decode("utf-8", "replace")
    attr = _answer(verdict, f"getattr {shown}", lambda: client.getattr(path), lenient)
    if attr is None:
        broken.add(path)
        return
    if node.mode in (MODE_DIR, MODE_GITLINK):
        listing = _answer(verdict, f"readdir {shown}", lambda: client.listdir(path), lenient)
        if listing is None:
            broken.add(path)
        elif {n for n, _, _ in listing} - {b".", b".."} == expected.children(path):
            verdict.correct += 1
        else:
            verdict.bad(f"9p readdir {shown}: wrong listing")
        return
    data = _answer(verdict, f"read {shown}", lambda: client.read(path), lenient)
    if data is not None:
        if data == node.content:
            verdict.correct += 1
        else:
            verdict.bad(f"9p read {shown}: wrong bytes")
        size = attr.num("size")
        if size != len(node.content):
            verdict.bad(f"9p getattr {shown}: size {size}, yet the content reads back")
    if node.mode == MODE_LINK:
        target = _answer(verdict, f"readlink {shown}", lambda: _readlink(client, path), lenient)
        if target is not None and target != node.content:
            verdict.bad(f"9p readlink {shown}: wrong target")


def _readlink(client: Client, path: bytes) -> bytes:
    fid, _ = client.walk(path)
    try:
        return client.rpc(MsgType.TREADLINK, fid=fid).text("target")
    finally:
        client.clunk(fid)


def _judge_hostile(verdict: Verdict, client: Client, path: bytes) -> None:
    shown = "/" + path.decode("utf-8", "replace")
    try:
        client.read(path)
    except P9Error as e:
        if e.errno in (errno.EIO, errno.EISDIR):
            verdict.rejected += e.errno == errno.EIO
            if e.errno == errno.EIO:
                return
        else:
            verdict.bad(f"9p read {shown}: error {e.errno} for a hostile entry, not EIO")
            return
    else:
        verdict.bad(f"9p read {shown}: answered for a hostile entry")
        return
    try:
        client.listdir(path)
        verdict.bad(f"9p readdir {shown}: answered for a hostile directory")
    except P9Error as e:
        if e.errno != errno.EIO:
            verdict.bad(f"9p readdir {shown}: error {e.errno} for a hostile directory, not EIO")
        verdict.rejected += 1
