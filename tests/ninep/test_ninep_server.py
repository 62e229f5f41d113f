"""The server, driven over a unix socket by the test client, serving the in-memory filesystem."""

from __future__ import annotations

import errno
import socket
import stat
import struct
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager

import pytest

from docteur.ninep import wire
from docteur.ninep.server import Limits
from docteur.ninep.wire import Dialect, Message, MsgType, Qid

from .client import Client, P9Error
from .conftest import BIG, SPEC, Served, wait_for
from .memfs import MTIME, Exec, Link, MemFS, Spec

DIALECTS = ["9P2000.L", "9P2000.u", "9P2000"]
Serve = Callable[..., AbstractContextManager[Served]]


def files(spec: Spec, prefix: str = "") -> dict[str, bytes]:
    """Every file of a spec with the bytes a read returns (a symlink's target)."""
    out: dict[str, bytes] = {}
    for name, item in spec.items():
        path = prefix + name
        if isinstance(item, dict):
            out |= files(item, path + "/")
        else:
            out[path] = (
                item.target if isinstance(item, Link) else item.data if isinstance(item, Exec) else item
            )
    return out


def errno_of(call: Callable[[], object]) -> int:
    with pytest.raises(P9Error) as caught:
        call()
    return caught.value.errno


# -- version and attach -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("asked", "answer"),
    [
        ("9P2000.L", "9P2000.L"),
        ("9P2000.u", "9P2000.u"),
        ("9P2000", "9P2000"),
        ("9P2000.X", "9P2000"),  # an unknown extension: its base protocol
        ("9P2001.L", "9P2000"),  # a later protocol: the lower one we speak
        ("9P1999", "unknown"),
        ("HTTP/1.1", "unknown"),
    ],
)
def test_version_negotiation(served: Served, asked: str, answer: str) -> None:
    with Client(served.path) as c:
        assert c.version(asked).text("version") == answer.encode()


def test_msize_is_negotiated_down_and_bounded(served: Served) -> None:
    with Client(served.path) as c:
        assert c.version("9P2000.L", msize=4 << 20).num("msize") == Limits().max_msize == 1 << 20
        assert c.version("9P2000.L", msize=8192).num("msize") == 8192
        assert c.version("9P2000.L", msize=1024).text("version") == b"unknown"
        with pytest.raises(P9Error):  # no session after "unknown"
            c.attach()


def test_tversion_resets_the_session(served: Served) -> None:
    with served.client() as c:
        fid, _ = c.walk("docs")
        c.version("9P2000.u")
        assert errno_of(lambda: c.walk("a.md", fid=fid)) == errno.EBADF
        c.attach()
        assert c.read("docs/a.md") == b"alpha\n"


def test_attach_and_auth(served: Served) -> None:
    with Client(served.path) as c:
        c.version()
        assert c.attach(fid=7).type == wire.QTDIR
        assert errno_of(lambda: c.attach(fid=7)) == errno.EBADF  # fid in use
        args = {"afid": 1, "uname": b"nobody", "aname": b"", "n_uname": wire.NONUNAME}
        assert errno_of(lambda: c.rpc(MsgType.TAUTH, **args)) == errno.EOPNOTSUPP
        assert errno_of(lambda: c.rpc(MsgType.TATTACH, fid=8, **args)) == errno.EBADF  # no auth fid


def test_requests_before_version_fail(served: Served) -> None:
    with Client(served.path) as c:
        assert errno_of(lambda: c.attach()) == errno.EPROTO


# -- walk ---------------------------------------------------------------------------------------------


def test_walk(served: Served) -> None:
    with served.client() as c:
        root = c.walk("")[1]
        assert root == []
        _, qids = c.walk("docs/deep/x")
        assert [q.type for q in qids] == [wire.QTDIR, wire.QTDIR, wire.QTFILE]
        _, (link,) = c.walk("link")
        assert link.type == wire.QTSYMLINK
        assert errno_of(lambda: c.walk("nope")) == errno.ENOENT
        fid, _ = c.walk("README.md")
        assert errno_of(lambda: c.walk("x", fid=fid)) == errno.ENOTDIR
        assert errno_of(lambda: c.walk(b"docs/a/b")) == errno.ENOENT  # partial: see below
        too_many = [b"docs"] + [b".."] * 16
        assert errno_of(lambda: c.rpc(MsgType.TWALK, fid=0, newfid=50, wnames=too_many)) == errno.EINVAL
        assert errno_of(lambda: c.rpc(MsgType.TWALK, fid=0, newfid=50, wnames=[b"docs/a.md"])) == errno.ENOENT
        assert errno_of(lambda: c.rpc(MsgType.TWALK, fid=99, newfid=50, wnames=[])) == errno.EBADF


def test_partial_walk_returns_the_qids_walked_and_makes_no_fid(served: Served) -> None:
    with served.client() as c:
        reply = c.rpc(MsgType.TWALK, fid=0, newfid=60, wnames=[b"docs", b"deep", b"missing", b"x"])
        assert len(reply.args["qids"]) == 2  # type: ignore[arg-type]
        assert errno_of(lambda: c.clunk(60)) == errno.EBADF


def test_dotdot_never_leaves_the_root(served: Served) -> None:
    with served.client() as c:
        root_qid = c.getattr("").args["qid"]
        _, qids = c.walk(b"../../..")
        assert qids == [root_qid] * 3
        _, qids = c.walk(b"docs/deep/../../../docs")
        assert qids[-1] == c.walk("docs")[1][0]
        fid, _ = c.walk(b"..")
        assert c.rpc(MsgType.TGETATTR, fid=fid, request_mask=0x7FF).args["qid"] == root_qid


def test_walk_clones_and_replaces_fids(served: Served) -> None:
    with served.client() as c:
        clone = c.rpc(MsgType.TWALK, fid=0, newfid=70, wnames=[])
        assert clone.args["qids"] == []
        c.rpc(MsgType.TWALK, fid=70, newfid=70, wnames=[b"docs"])  # newfid == fid: fid moves
        c.rpc(MsgType.TWALK, fid=70, newfid=71, wnames=[b"a.md"])
        c.open(71)
        assert c.rpc(MsgType.TREAD, fid=71, offset=0, count=100).text("data") == b"alpha\n"


def test_qids_are_stable_and_distinct(served: Served) -> None:
    with served.client() as a, served.client("9P2000.u") as b:
        for path in ("", "docs", "docs/a.md", "link", "many/file-0001-n"):
            assert a.walk(path)[1][-1:] == b.walk(path)[1][-1:]
        # The same blob at two paths is two files (hard links would let one dentry stand for both).
        assert files(SPEC)["README.md"] == files(SPEC)["docs/same.md"]
        assert a.walk("README.md")[1][0].path != a.walk("docs/same.md")[1][0].path
        paths = [q.path for name, q, _ in a.listdir("many")]
        assert len(set(paths)) == len(paths)


# -- reading ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", DIALECTS)
@pytest.mark.parametrize("msize", [4096, 65536, 1 << 20])
def test_every_file_reads_back(served: Served, version: str, msize: int) -> None:
    with served.client(version, msize) as c:
        for path, data in files(SPEC).items():
            assert c.read(path) == data, path


def test_reads_at_offsets_and_counts(served: Served) -> None:
    with served.client(msize=8192) as c:
        fid, _ = c.walk("big.bin")
        c.open(fid)
        assert c.rpc(MsgType.TREAD, fid=fid, offset=1000, count=10).text("data") == BIG[1000:1010]
        assert c.rpc(MsgType.TREAD, fid=fid, offset=len(BIG) - 3, count=100).text("data") == BIG[-3:]
        assert c.rpc(MsgType.TREAD, fid=fid, offset=len(BIG) + 5, count=100).text("data") == b""
        # A count beyond msize is cut so the reply fits in msize.
        data = c.rpc(MsgType.TREAD, fid=fid, offset=0, count=1 << 20).text("data")
        assert data == BIG[: 8192 - 11]


def test_reads_need_an_open_fid(served: Served) -> None:
    with served.client() as c:
        fid, _ = c.walk("README.md")
        assert errno_of(lambda: c.rpc(MsgType.TREAD, fid=fid, offset=0, count=10)) == errno.EBADF
        c.open(fid)
        assert errno_of(lambda: c.open(fid)) == errno.EBADF  # already open
        dfid, _ = c.walk("docs")
        c.open(dfid)
        assert errno_of(lambda: c.rpc(MsgType.TREAD, fid=dfid, offset=0, count=100)) == errno.EISDIR
        assert errno_of(lambda: c.rpc(MsgType.TREADDIR, fid=fid, offset=0, count=100)) == errno.ENOTDIR


def _names(listing: list[tuple[bytes, Qid, int]]) -> list[bytes]:
    return [name for name, _, _ in listing]


def test_readdir_lists_dot_dotdot_and_children(served: Served) -> None:
    with served.client() as c:
        listing = c.listdir("docs")
        assert _names(listing) == [b".", b"..", b"a.md", b"deep", b"same.md"]
        types = {name: kind for name, _, kind in listing}
        assert types == {b".": 4, b"..": 4, b"a.md": 8, b"deep": 4, b"same.md": 8}
        by_name = {name: qid for name, qid, _ in listing}
        assert by_name[b"."] == c.walk("docs")[1][0]
        assert by_name[b".."] == c.getattr("").args["qid"]
        assert _names(c.listdir(""))[2:] == [n.encode("utf-8", "surrogateescape") for n in sorted(SPEC)]
        link_type = {name: kind for name, _, kind in c.listdir("")}[b"link"]
        assert link_type == 10


def test_readdir_resumes_at_every_offset(served: Served) -> None:
    with served.client(msize=4096) as c:
        whole = c.listdir("many")
        assert len(whole) == 402
        assert len(c.listdir("many", count=300)) == 402  # many small replies, same entries
        fid, _ = c.walk("many")
        c.open(fid)
        for start in (0, 1, 2, 150, 401, 402):
            data = c.rpc(MsgType.TREADDIR, fid=fid, offset=start, count=4000).text("data")
            entries = wire.decode_dirents(data)
            assert [e.name for e in entries] == _names(whole)[start : start + len(entries)]
            assert [e.offset for e in entries] == list(range(start + 1, start + 1 + len(entries)))
        assert errno_of(lambda: c.rpc(MsgType.TREADDIR, fid=fid, offset=0, count=20)) == errno.EINVAL


@pytest.mark.parametrize("version", ["9P2000.u", "9P2000"])
def test_directory_reads_are_stat_records(served: Served, version: str) -> None:
    with served.client(version, msize=4096) as c:
        listing = c.listdir("many")
        assert _names(listing) == [n.encode() for n in sorted(SPEC["many"])]  # type: ignore[arg-type]
        assert all(mode & wire.DMDIR == 0 for _, _, mode in listing)
        fid, _ = c.walk("many")
        c.open(fid)
        first = c.rpc(MsgType.TREAD, fid=fid, offset=0, count=500).text("data")
        records = wire.decode_stats(first, c.dialect)  # type: ignore[arg-type]
        assert len(records) > 1 and len(first) <= 500
        again = c.rpc(MsgType.TREAD, fid=fid, offset=len(first), count=500).text("data")
        assert wire.decode_stats(again, c.dialect)[0].name == _names(listing)[len(records)]  # type: ignore[arg-type]
        assert errno_of(lambda: c.rpc(MsgType.TREAD, fid=fid, offset=3, count=500)) == errno.EINVAL
        assert errno_of(lambda: c.rpc(MsgType.TREAD, fid=fid, offset=0, count=10)) == errno.EINVAL


def test_non_utf8_names(served: Served) -> None:
    with served.client() as c:
        assert b"caf\xe9" in _names(c.listdir(""))
        assert c.read(b"caf\xe9") == b"latin-1 name\n"


# -- attributes ---------------------------------------------------------------------------------------


def test_getattr_modes_sizes_times(served: Served) -> None:
    with served.client() as c:
        expect = {
            "": (stat.S_IFDIR | 0o755, 0),
            "docs": (stat.S_IFDIR | 0o755, 0),
            "README.md": (stat.S_IFREG | 0o644, 8),
            "run.sh": (stat.S_IFREG | 0o755, 18),
            "link": (stat.S_IFLNK | 0o777, 9),
            "big.bin": (stat.S_IFREG | 0o644, len(BIG)),
        }
        for path, (mode, size) in expect.items():
            a = c.getattr(path)
            assert (a.num("mode"), a.num("size"), a.num("uid"), a.num("gid")) == (mode, size, 0, 0), path
            assert a.num("valid") & 0x7FF == 0x7FF
            assert a.num("mtime_sec") == a.num("atime_sec") == a.num("ctime_sec") == MTIME
            assert a.num("blocks") == (size + 511) // 512


def test_uid_and_gid_options(serve: Serve, memfs: MemFS) -> None:
    with serve(memfs, uid=1000, gid=100) as s, s.client() as c, s.client("9P2000.u") as u:
        a = c.getattr("README.md")
        assert (a.num("uid"), a.num("gid")) == (1000, 100)
        st_ = u.stat("README.md")
        assert (st_.n_uid, st_.n_gid, st_.uid, st_.gid) == (1000, 100, b"1000", b"100")


def test_stat_in_9p2000u_and_9p2000(served: Served) -> None:
    with served.client("9P2000.u") as u, served.client("9P2000") as p:
        link = u.stat("link")
        assert link.mode == wire.DMSYMLINK | 0o777 and link.extension == b"README.md"
        assert link.qid.type == wire.QTSYMLINK and link.length == 9
        plain = p.stat("link")  # 9P2000 has no symlinks: a file holding the target
        assert plain.mode == 0o644 and plain.qid.type == wire.QTFILE
        assert u.stat("docs").mode == wire.DMDIR | 0o755
        assert u.stat("").name == b"/"
        assert (u.stat("run.sh").mode, u.stat("run.sh").mtime) == (0o755, MTIME)


def test_statfs_readlink_xattr(served: Served) -> None:
    with served.client() as c:
        fs = c.rpc(MsgType.TSTATFS, fid=0)
        assert (fs.num("type"), fs.num("bsize"), fs.num("bfree"), fs.num("namelen")) == (
            0x01021997,
            4096,
            0,
            255,
        )
        fid, _ = c.walk("dangling")
        assert c.rpc(MsgType.TREADLINK, fid=fid).text("target") == b"../nowhere"
        fid, _ = c.walk("README.md")
        assert errno_of(lambda: c.rpc(MsgType.TREADLINK, fid=fid)) == errno.EINVAL
        named = {"fid": fid, "newfid": 80, "name": b"user.x"}
        assert errno_of(lambda: c.rpc(MsgType.TXATTRWALK, **named)) == errno.ENODATA
        assert c.rpc(MsgType.TXATTRWALK, fid=fid, newfid=80, name=b"").num("size") == 0
        assert c.rpc(MsgType.TREAD, fid=80, offset=0, count=100).text("data") == b""
        c.clunk(80)


def test_clunk(served: Served) -> None:
    with served.client() as c:
        fid, _ = c.walk("docs")
        c.clunk(fid)
        assert errno_of(lambda: c.clunk(fid)) == errno.EBADF
        assert errno_of(lambda: c.walk("a.md", fid=fid)) == errno.EBADF


# -- read-only ----------------------------------------------------------------------------------------


def _mutation(dialect: Dialect, kind: MsgType, fid: int) -> dict[str, wire.Value]:
    """Plausible arguments for a mutating request aimed at ``fid``."""
    args: dict[str, wire.Value] = {}
    for name, code in wire.layout(dialect, kind):
        if name in ("fid", "dfid", "olddirfid", "newdirfid", "dirfd"):
            args[name] = fid
        elif code == "S":
            args[name] = wire.Stat(0, 0, Qid(0, 0, 0), 0o600, 0, 0, 0, b"renamed", b"", b"", b"")
        elif code in "sD":
            args[name] = b"README.md" if name in ("name", "oldname") else b"new"
        elif name == "type":
            args[name] = 1  # a write lock
        else:
            args[name] = 1
    return args


@pytest.mark.parametrize("version", DIALECTS)
def test_every_mutation_is_refused_and_changes_nothing(served: Served, version: str) -> None:
    with served.client(version) as c:
        assert c.dialect is not None
        kinds = [
            k for k in wire.LAYOUTS[c.dialect] if k % 2 == 0 and k not in (MsgType.TVERSION, MsgType.TFLUSH)
        ]
        mutations = {
            MsgType.TWRITE, MsgType.TCREATE, MsgType.TLCREATE, MsgType.TSYMLINK, MsgType.TMKNOD,
            MsgType.TRENAME, MsgType.TSETATTR, MsgType.TXATTRCREATE, MsgType.TLINK, MsgType.TMKDIR,
            MsgType.TRENAMEAT, MsgType.TUNLINKAT, MsgType.TWSTAT, MsgType.TREMOVE, MsgType.TLOCK,
        }  # fmt: skip
        refused = [kind for kind in kinds if kind in mutations]
        for kind in refused:
            for target in ("", "README.md", "docs"):
                fid, _ = c.walk(target)
                code = errno_of(lambda: c.rpc(kind, **_mutation(c.dialect, kind, fid)))  # noqa: B023
                assert code == errno.EROFS, (kind.name, target)
        assert len(refused) == (13 if c.dialect is Dialect.L else 4)
        # Opening for writing is refused too.
        modes = [1, 2, 0o1000] if c.dialect is Dialect.L else [1, 2, 0x10, 0x40]
        for mode in modes:
            fid, _ = c.walk("README.md")
            assert errno_of(lambda: c.open(fid, mode)) == errno.EROFS  # noqa: B023
        for path, data in files(SPEC).items():
            assert c.read(path) == data
        assert _names(c.listdir("docs"))[-3:] == [b"a.md", b"deep", b"same.md"]


def test_remove_clunks_the_fid_even_though_it_fails(served: Served) -> None:
    with served.client("9P2000.u") as c:
        fid, _ = c.walk("README.md")
        assert errno_of(lambda: c.rpc(MsgType.TREMOVE, fid=fid)) == errno.EROFS
        assert errno_of(lambda: c.clunk(fid)) == errno.EBADF
        assert c.read("README.md") == b"# hello\n"


def test_what_changes_nothing_is_allowed(served: Served) -> None:
    with served.client() as c, served.client("9P2000.u") as u:
        fid, _ = c.walk("README.md")
        c.open(fid)
        c.rpc(MsgType.TFSYNC, fid=fid, datasync=0)
        lock = {"flags": 0, "start": 0, "length": 0, "proc_id": 1, "client_id": b"guest"}
        assert c.rpc(MsgType.TLOCK, fid=fid, type=0, **lock).num("status") == 0  # shared
        assert c.rpc(MsgType.TLOCK, fid=fid, type=2, **lock).num("status") == 0  # unlock
        del lock["flags"]
        assert c.rpc(MsgType.TGETLOCK, fid=fid, type=1, **lock).num("type") == 2  # nothing holds it
        # A wstat of "don't touch" values is 9P2000's fsync.
        n = 0xFFFFFFFF
        blank = wire.Stat(
            0xFFFF, n, Qid(0xFF, n, 2**64 - 1), n, n, n, 2**64 - 1, b"", b"", b"", b"", b"", n, n, n
        )
        ufid, _ = u.walk("README.md")
        u.rpc(MsgType.TWSTAT, fid=ufid, stat=blank)


# -- flush, concurrency, slow clients -----------------------------------------------------------------


def test_flush_cancels_a_pending_read(served: Served, memfs: MemFS) -> None:
    gate = memfs.gates["big.bin"] = threading.Event()
    with served.client() as c:
        fid, _ = c.walk("big.bin")
        c.open(fid)
        old = c.send(MsgType.TREAD, fid=fid, offset=0, count=100)
        tag = c.send(MsgType.TFLUSH, oldtag=old)
        reply = c.recv()
        assert (reply.type, reply.tag) == (MsgType.RFLUSH, tag)
        gate.set()
        # The flushed read never answers: the next reply is for the next request.
        after = c.send(MsgType.TCLUNK, fid=fid)
        reply = c.recv()
        assert (reply.type, reply.tag) == (MsgType.RCLUNK, after)
        assert c.rpc(MsgType.TFLUSH, oldtag=999).type is MsgType.RFLUSH  # nothing to flush


def test_a_blocked_read_blocks_neither_its_client_nor_others(served: Served, memfs: MemFS) -> None:
    gate = memfs.gates["big.bin"] = threading.Event()
    with served.client() as a, served.client("9P2000.u") as b:
        fid, _ = a.walk("big.bin")
        a.open(fid)
        slow = a.send(MsgType.TREAD, fid=fid, offset=0, count=100)
        assert b.read("docs/a.md") == b"alpha\n"  # another client
        fast = a.send(MsgType.TGETATTR, fid=fid, request_mask=0x7FF)  # the same client
        reply = a.recv()
        assert reply.tag == fast
        gate.set()
        reply = a.recv()
        assert (reply.tag, reply.text("data")) == (slow, BIG[:100])


def test_many_outstanding_requests(served: Served) -> None:
    with served.client() as c:
        fid, _ = c.walk("big.bin")
        c.open(fid)
        offsets = {c.send(MsgType.TREAD, fid=fid, offset=i * 1000, count=1000): i * 1000 for i in range(200)}
        for _ in range(len(offsets)):
            reply = c.recv()
            offset = offsets.pop(reply.tag)
            assert reply.text("data") == BIG[offset : offset + 1000]
        assert not offsets


def test_a_slow_client_does_not_hold_up_others(served: Served) -> None:
    with served.client(msize=1 << 20) as slow, served.client() as other:
        fid, _ = slow.walk("big.bin")
        slow.open(fid)
        for _ in range(40):  # ~12 MiB of replies it never reads
            slow.send(MsgType.TREAD, fid=fid, offset=0, count=1 << 20)
        started = time.monotonic()
        for _ in range(5):
            assert other.read("big.bin") == BIG
        assert time.monotonic() - started < 10


# -- limits and malformed input -----------------------------------------------------------------------


def test_fid_limit(serve: Serve, memfs: MemFS) -> None:
    with serve(memfs, limits=Limits(max_fids=3)) as s, s.client() as c:
        c.walk("docs")
        c.walk("README.md")
        assert errno_of(lambda: c.walk("link")) == errno.EMFILE
        assert errno_of(lambda: c.rpc(MsgType.TXATTRWALK, fid=0, newfid=9, name=b"")) == errno.EMFILE
        c.clunk(101)
        c.walk("link")


def _raw(served: Served, data: bytes) -> Client:
    c = Client(served.path)
    c.version(msize=8192)
    c.sock.sendall(data)
    return c


@pytest.mark.parametrize(
    "data",
    [
        struct.pack("<I", 3),  # a size smaller than a header
        struct.pack("<IBH", 9000, MsgType.TREAD, 1) + b"\0" * 8993,  # larger than msize
        struct.pack("<I", 0xFFFFFFFF) + b"\0" * 16,  # absurd
    ],
)
def test_bad_frame_sizes_close_the_connection_only(served: Served, data: bytes) -> None:
    with served.client() as other:
        bad = _raw(served, data)
        assert bad.closed_by_server()
        assert other.read("docs/a.md") == b"alpha\n"
        with served.client() as fresh:
            assert fresh.read("README.md") == b"# hello\n"


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (struct.pack("<IBH", 7, 250, 5), errno.EOPNOTSUPP),  # unknown type
        (struct.pack("<IBHH", 9, MsgType.TCLUNK, 5, 0), errno.EPROTO),  # truncated fid
        (struct.pack("<IBHIIH", 19, MsgType.TWALK, 5, 0, 1, 1) + b"\x09\x00", errno.EPROTO),  # bad string
        (struct.pack("<IBH", 7, MsgType.RCLUNK, 5), errno.EOPNOTSUPP),  # a reply sent as a request
        (struct.pack("<IBHI", 11, MsgType.TCLUNK, 5, 12345), errno.EBADF),  # unknown fid
        (struct.pack("<IBH", 7, MsgType.TERROR, 5), errno.EOPNOTSUPP),
    ],
)
def test_malformed_messages_get_an_error_and_the_session_goes_on(
    served: Served, frame: bytes, code: int
) -> None:
    c = _raw(served, frame)
    reply = c.recv()
    assert reply.tag == 5
    assert errno_of(lambda: c.check(reply)) == code
    c.attach()
    assert c.read("README.md") == b"# hello\n"


def test_a_tag_reused_while_in_flight_closes_the_connection(served: Served, memfs: MemFS) -> None:
    gate = memfs.gates["big.bin"] = threading.Event()
    with served.client() as c, served.client() as other:
        fid, _ = c.walk("big.bin")
        c.open(fid)
        c.send(MsgType.TREAD, tag=33, fid=fid, offset=0, count=10)
        c.send(MsgType.TREAD, tag=33, fid=fid, offset=0, count=10)
        assert c.closed_by_server()
        gate.set()
        assert other.read("README.md") == b"# hello\n"


def test_clients_that_vanish_leave_nothing_behind(served: Served, memfs: MemFS) -> None:
    gate = memfs.gates["big.bin"] = threading.Event()
    workers = served.server.workers
    for _ in range(3):  # fewer than the worker threads
        c = served.client()
        fid, _ = c.walk("big.bin")
        c.open(fid)
        c.send(MsgType.TREAD, fid=fid, offset=0, count=10)
        c.sock.shutdown(socket.SHUT_RDWR)
        c.close()
    # Gone from the connections, but a read that reached a thread before its client went holds it until
    # the gate opens (a thread cannot be taken back from a call), and counts; the others are still served.
    wait_for(lambda: not served.server.connections, "the vanished clients' connections closed")
    assert workers.busy <= 3 and not workers.waiting
    with served.client() as c:
        assert [name for name, _, _ in c.listdir("docs")][2:] == [b"a.md", b"deep", b"same.md"]  # a thread
    gate.set()
    # Nothing behind: every thread free again, and the scheduler remembers none of them.
    wait_for(lambda: workers.busy == 0 and not workers.running and not workers.served, "threads freed")
    with served.client() as c:
        assert c.read("big.bin") == BIG


def test_messages_never_exceed_msize(served: Served) -> None:
    with served.client(msize=4096) as c:
        fid, _ = c.walk("many")
        c.open(fid)
        tag = c.send(MsgType.TREADDIR, fid=fid, offset=0, count=1 << 20)
        header = c.sock.recv(4, socket.MSG_PEEK)
        assert wire.frame_size(header) <= 4096
        reply = c.recv()
        assert reply.tag == tag and len(wire.decode_dirents(reply.text("data"))) > 10


def test_message_type_sets(served: Served) -> None:
    # Readdir exists only in 9P2000.L, stat only in the others.
    with served.client("9P2000") as p:
        frame = wire.encode(Message(MsgType.TREADDIR, 3, fid=0, offset=0, count=100), Dialect.L)
        p.sock.sendall(frame)
        assert errno_of(lambda: p.check(p.recv())) == errno.EOPNOTSUPP
