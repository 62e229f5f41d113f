"""The 9P wire format: message types, field layouts per dialect, encoding and decoding.

One table describes every message of 9P2000, 9P2000.u and 9P2000.L; the same code encodes and decodes
both directions (the server decodes T-messages and encodes R-messages, the test client the reverse).
Strings stay ``bytes``: Linux sends file names as raw bytes, which need not be UTF-8.
"""

from __future__ import annotations

import enum
import errno
import struct
from dataclasses import dataclass
from typing import NamedTuple

NOTAG = 0xFFFF
NOFID = 0xFFFFFFFF
NONUNAME = 0xFFFFFFFF
HEADER_SIZE = 7  # size[4] type[1] tag[2]
IOHDRSZ = 24  # what Linux and Plan 9 reserve for the header of a read or write
MAXWELEM = 16  # most names one Twalk may carry

# qid.type bits
QTDIR = 0x80
QTSYMLINK = 0x02
QTFILE = 0x00

# 9P2000 / .u stat mode bits
DMDIR = 0x80000000
DMSYMLINK = 0x02000000


class Dialect(enum.Enum):
    """A protocol dialect, named by the string Tversion carries."""

    P9 = "9P2000"
    U = "9P2000.u"
    L = "9P2000.L"


class MsgType(enum.IntEnum):
    TLERROR = 6  # illegal, like Terror
    RLERROR = 7
    TSTATFS = 8
    RSTATFS = 9
    TLOPEN = 12
    RLOPEN = 13
    TLCREATE = 14
    RLCREATE = 15
    TSYMLINK = 16
    RSYMLINK = 17
    TMKNOD = 18
    RMKNOD = 19
    TRENAME = 20
    RRENAME = 21
    TREADLINK = 22
    RREADLINK = 23
    TGETATTR = 24
    RGETATTR = 25
    TSETATTR = 26
    RSETATTR = 27
    TXATTRWALK = 30
    RXATTRWALK = 31
    TXATTRCREATE = 32
    RXATTRCREATE = 33
    TREADDIR = 40
    RREADDIR = 41
    TFSYNC = 50
    RFSYNC = 51
    TLOCK = 52
    RLOCK = 53
    TGETLOCK = 54
    RGETLOCK = 55
    TLINK = 70
    RLINK = 71
    TMKDIR = 72
    RMKDIR = 73
    TRENAMEAT = 74
    RRENAMEAT = 75
    TUNLINKAT = 76
    RUNLINKAT = 77
    TVERSION = 100
    RVERSION = 101
    TAUTH = 102
    RAUTH = 103
    TATTACH = 104
    RATTACH = 105
    TERROR = 106  # illegal
    RERROR = 107
    TFLUSH = 108
    RFLUSH = 109
    TWALK = 110
    RWALK = 111
    TOPEN = 112
    ROPEN = 113
    TCREATE = 114
    RCREATE = 115
    TREAD = 116
    RREAD = 117
    TWRITE = 118
    RWRITE = 119
    TCLUNK = 120
    RCLUNK = 121
    TREMOVE = 122
    RREMOVE = 123
    TSTAT = 124
    RSTAT = 125
    TWSTAT = 126
    RWSTAT = 127


class Qid(NamedTuple):
    type: int
    version: int
    path: int


@dataclass(frozen=True, slots=True)
class Stat:
    """The stat record of 9P2000; the last four fields exist on the wire only in 9P2000.u."""

    type: int
    dev: int
    qid: Qid
    mode: int
    atime: int
    mtime: int
    length: int
    name: bytes
    uid: bytes
    gid: bytes
    muid: bytes
    extension: bytes = b""
    n_uid: int = NONUNAME
    n_gid: int = NONUNAME
    n_muid: int = NONUNAME


class Dirent(NamedTuple):
    """One entry of a 9P2000.L Rreaddir."""

    qid: Qid
    offset: int
    type: int
    name: bytes


Value = int | bytes | Qid | Stat | list[bytes] | list[Qid]


class WireError(Exception):
    """A frame that does not parse; ``tag`` is set when the header was readable, so a reply can be sent,
    and ``errno`` says why (EPROTO for a bad layout, EOPNOTSUPP for a type the dialect lacks)."""

    def __init__(self, message: str, tag: int | None = None, code: int = errno.EPROTO) -> None:
        super().__init__(message)
        self.tag = tag
        self.errno = code


class Message:
    """A decoded message: its type, tag and named fields (see ``layout``)."""

    __slots__ = ("args", "tag", "type")

    def __init__(self, type: MsgType, tag: int, /, **args: Value) -> None:  # positional: fields may be "type"
        self.type = type
        self.tag = tag
        self.args = args

    def num(self, name: str) -> int:
        value = self.args[name]
        assert isinstance(value, int)
        return value

    def text(self, name: str) -> bytes:
        value = self.args[name]
        assert isinstance(value, bytes)
        return value

    def names(self, name: str) -> list[bytes]:
        value = self.args[name]
        assert isinstance(value, list)
        return value  # type: ignore[return-value]

    def stat(self, name: str = "stat") -> Stat:
        value = self.args[name]
        assert isinstance(value, Stat)
        return value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Message) and (self.type, self.tag, self.args) == (
            other.type,
            other.tag,
            other.args,
        )

    def __hash__(self) -> int:
        return hash((self.type, self.tag))

    def __repr__(self) -> str:
        fields = " ".join(f"{k}={_shown(v)}" for k, v in self.args.items())
        return f"<{self.type.name} tag={self.tag} {fields}>"


def _shown(value: Value) -> str:
    """A field for logs: data is summed up by its length."""
    if isinstance(value, bytes) and len(value) > 64:
        return f"<{len(value)} bytes>"
    return repr(value)


# Field codes: b u8, w u16, d u32, q u64, s string, Q qid, D counted data (u32), W names (u16 count),
# R qids (u16 count), S a stat (u16 size first, as in Rstat and Twstat).
_COMMON = {
    MsgType.TVERSION: "msize:d version:s",
    MsgType.RVERSION: "msize:d version:s",
    MsgType.TAUTH: "afid:d uname:s aname:s",
    MsgType.RAUTH: "aqid:Q",
    MsgType.TATTACH: "fid:d afid:d uname:s aname:s",
    MsgType.RATTACH: "qid:Q",
    MsgType.TFLUSH: "oldtag:w",
    MsgType.RFLUSH: "",
    MsgType.TWALK: "fid:d newfid:d wnames:W",
    MsgType.RWALK: "qids:R",
    MsgType.TREAD: "fid:d offset:q count:d",
    MsgType.RREAD: "data:D",
    MsgType.TWRITE: "fid:d offset:q data:D",
    MsgType.RWRITE: "count:d",
    MsgType.TCLUNK: "fid:d",
    MsgType.RCLUNK: "",
    MsgType.TREMOVE: "fid:d",
    MsgType.RREMOVE: "",
}
_CLASSIC = {
    MsgType.RERROR: "ename:s",
    MsgType.TOPEN: "fid:d mode:b",
    MsgType.ROPEN: "qid:Q iounit:d",
    MsgType.TCREATE: "fid:d name:s perm:d mode:b",
    MsgType.RCREATE: "qid:Q iounit:d",
    MsgType.TSTAT: "fid:d",
    MsgType.RSTAT: "stat:S",
    MsgType.TWSTAT: "fid:d stat:S",
    MsgType.RWSTAT: "",
}
# 9P2000.u and 9P2000.L both add the numeric user to auth and attach.
_NUMERIC_USER = {
    MsgType.TAUTH: "afid:d uname:s aname:s n_uname:d",
    MsgType.TATTACH: "fid:d afid:d uname:s aname:s n_uname:d",
}
_UNIX = {
    MsgType.RERROR: "ename:s errno:d",
    MsgType.TCREATE: "fid:d name:s perm:d mode:b extension:s",
}
_LINUX = {
    MsgType.RLERROR: "ecode:d",
    MsgType.TSTATFS: "fid:d",
    MsgType.RSTATFS: "type:d bsize:d blocks:q bfree:q bavail:q files:q ffree:q fsid:q namelen:d",
    MsgType.TLOPEN: "fid:d flags:d",
    MsgType.RLOPEN: "qid:Q iounit:d",
    MsgType.TLCREATE: "fid:d name:s flags:d mode:d gid:d",
    MsgType.RLCREATE: "qid:Q iounit:d",
    MsgType.TSYMLINK: "fid:d name:s symtgt:s gid:d",
    MsgType.RSYMLINK: "qid:Q",
    MsgType.TMKNOD: "dfid:d name:s mode:d major:d minor:d gid:d",
    MsgType.RMKNOD: "qid:Q",
    MsgType.TRENAME: "fid:d dfid:d name:s",
    MsgType.RRENAME: "",
    MsgType.TREADLINK: "fid:d",
    MsgType.RREADLINK: "target:s",
    MsgType.TGETATTR: "fid:d request_mask:q",
    MsgType.RGETATTR: (
        "valid:q qid:Q mode:d uid:d gid:d nlink:q rdev:q size:q blksize:q blocks:q"
        " atime_sec:q atime_nsec:q mtime_sec:q mtime_nsec:q ctime_sec:q ctime_nsec:q"
        " btime_sec:q btime_nsec:q gen:q data_version:q"
    ),
    MsgType.TSETATTR: (
        "fid:d valid:d mode:d uid:d gid:d size:q atime_sec:q atime_nsec:q mtime_sec:q mtime_nsec:q"
    ),
    MsgType.RSETATTR: "",
    MsgType.TXATTRWALK: "fid:d newfid:d name:s",
    MsgType.RXATTRWALK: "size:q",
    MsgType.TXATTRCREATE: "fid:d name:s attr_size:q flags:d",
    MsgType.RXATTRCREATE: "",
    MsgType.TREADDIR: "fid:d offset:q count:d",
    MsgType.RREADDIR: "data:D",
    MsgType.TFSYNC: "fid:d datasync:d",
    MsgType.RFSYNC: "",
    MsgType.TLOCK: "fid:d type:b flags:d start:q length:q proc_id:d client_id:s",
    MsgType.RLOCK: "status:b",
    MsgType.TGETLOCK: "fid:d type:b start:q length:q proc_id:d client_id:s",
    MsgType.RGETLOCK: "type:b start:q length:q proc_id:d client_id:s",
    MsgType.TLINK: "dfid:d fid:d name:s",
    MsgType.RLINK: "",
    MsgType.TMKDIR: "dfid:d name:s mode:d gid:d",
    MsgType.RMKDIR: "qid:Q",
    MsgType.TRENAMEAT: "olddirfid:d oldname:s newdirfid:d newname:s",
    MsgType.RRENAMEAT: "",
    MsgType.TUNLINKAT: "dirfd:d name:s flags:d",
    MsgType.RUNLINKAT: "",
}

Layout = tuple[tuple[str, str], ...]


def _parse(spec: dict[MsgType, str]) -> dict[MsgType, Layout]:
    return {
        t: tuple((name, code) for name, code in (f.split(":") for f in text.split()))
        for t, text in spec.items()
    }


LAYOUTS: dict[Dialect, dict[MsgType, Layout]] = {
    Dialect.P9: _parse(_COMMON | _CLASSIC),
    Dialect.U: _parse(_COMMON | _CLASSIC | _NUMERIC_USER | _UNIX),
    Dialect.L: _parse(_COMMON | _NUMERIC_USER | _LINUX),
}


def layout(dialect: Dialect, type: MsgType) -> Layout:
    """The named fields of a message type in a dialect; KeyError if the dialect lacks it."""
    return LAYOUTS[dialect][type]


_FIXED = {"b": "B", "w": "H", "d": "I", "q": "Q", "Q": "BIQ"}


@dataclass(frozen=True, slots=True)
class _Run:
    """Consecutive fixed-size fields (integers, qids), packed and unpacked by one struct call."""

    struct: struct.Struct
    fields: Layout
    plain: tuple[str, ...] | None  # the names, when no field is a qid: one value per name


_Segment = _Run | tuple[str, str]  # or one variable-size field: (name, code)


def _compile(fields: Layout) -> tuple[tuple[_Segment, ...], frozenset[str]]:
    segments: list[_Segment] = []
    run: list[tuple[str, str]] = []
    for name, code in (*fields, ("", "")):  # a sentinel ends the last run
        if code in _FIXED and code:
            run.append((name, code))
            continue
        if run:
            packer = struct.Struct("<" + "".join(_FIXED[c] for _, c in run))
            plain = None if any(c == "Q" for _, c in run) else tuple(n for n, _ in run)
            segments.append(_Run(packer, tuple(run), plain))
            run = []
        if code:
            segments.append((name, code))
    return tuple(segments), frozenset(name for name, _ in fields)


_COMPILED = {d: {t: _compile(fields) for t, fields in layouts.items()} for d, layouts in LAYOUTS.items()}


_U8 = struct.Struct("<B")
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_QID = struct.Struct("<BIQ")
_HEADER = struct.Struct("<IBH")
_STAT_FIXED = struct.Struct("<HI")  # type dev, then qid mode atime mtime length
_STAT_TIMES = struct.Struct("<IIIQ")
_DIRENT = struct.Struct("<BIQQB")


class _Reader:
    __slots__ = ("buf", "pos", "tag")

    def __init__(self, buf: bytes, pos: int, tag: int | None) -> None:
        self.buf = buf
        self.pos = pos
        self.tag = tag

    def take(self, n: int) -> bytes:
        end = self.pos + n
        if end > len(self.buf):
            raise WireError("message truncated", self.tag)
        chunk = self.buf[self.pos : end]
        self.pos = end
        return chunk

    def uint(self, s: struct.Struct) -> int:
        if self.pos + s.size > len(self.buf):
            raise WireError("message truncated", self.tag)
        (value,) = s.unpack_from(self.buf, self.pos)
        self.pos += s.size
        return int(value)

    def string(self) -> bytes:
        return self.take(self.uint(_U16))

    def qid(self) -> Qid:
        if self.pos + _QID.size > len(self.buf):
            raise WireError("message truncated", self.tag)
        qid = Qid(*_QID.unpack_from(self.buf, self.pos))
        self.pos += _QID.size
        return qid

    def stat(self, dialect: Dialect) -> Stat:
        size = self.uint(_U16)
        body = _Reader(self.take(size), 0, self.tag)
        kind, dev = _STAT_FIXED.unpack(body.take(_STAT_FIXED.size))
        qid = body.qid()
        mode, atime, mtime, length = _STAT_TIMES.unpack(body.take(_STAT_TIMES.size))
        name, uid, gid, muid = body.string(), body.string(), body.string(), body.string()
        unix: tuple[bytes, int, int, int] = (b"", NONUNAME, NONUNAME, NONUNAME)
        if dialect is Dialect.U:
            unix = (body.string(), body.uint(_U32), body.uint(_U32), body.uint(_U32))
        if body.pos != size:
            raise WireError("stat record has trailing bytes", self.tag)
        return Stat(kind, dev, qid, mode, atime, mtime, length, name, uid, gid, muid, *unix)

    def run(self, run: _Run, args: dict[str, Value]) -> None:
        size = run.struct.size
        if self.pos + size > len(self.buf):
            raise WireError("message truncated", self.tag)
        values = run.struct.unpack_from(self.buf, self.pos)
        self.pos += size
        if run.plain is not None:
            args.update(zip(run.plain, values, strict=True))
            return
        i = 0
        for name, code in run.fields:
            if code == "Q":
                args[name] = Qid(*values[i : i + 3])
                i += 3
            else:
                args[name] = values[i]
                i += 1

    def value(self, code: str, dialect: Dialect) -> Value:
        if code == "s":
            return self.string()
        if code == "Q":
            return self.qid()
        if code == "D":
            return self.take(self.uint(_U32))
        if code == "W":
            return [self.string() for _ in range(self.uint(_U16))]
        if code == "R":
            return [self.qid() for _ in range(self.uint(_U16))]
        # "S": Rstat and Twstat carry the stat's size once more in front of it.
        outer = self.uint(_U16)
        start = self.pos
        stat = self.stat(dialect)
        if self.pos - start != outer:
            raise WireError("stat size mismatch", self.tag)
        return stat


def encode_stat(stat: Stat, dialect: Dialect) -> bytes:
    """One stat record (with its leading size), as directory reads return them."""
    body = [
        _STAT_FIXED.pack(stat.type, stat.dev),
        _QID.pack(*stat.qid),
        _STAT_TIMES.pack(stat.mode, stat.atime, stat.mtime, stat.length),
        *(_string(s) for s in (stat.name, stat.uid, stat.gid, stat.muid)),
    ]
    if dialect is Dialect.U:
        body += [
            _string(stat.extension),
            _U32.pack(stat.n_uid),
            _U32.pack(stat.n_gid),
            _U32.pack(stat.n_muid),
        ]
    data = b"".join(body)
    if len(data) > 0xFFFF:
        raise ValueError("stat record too large")
    return _U16.pack(len(data)) + data


def decode_stats(data: bytes, dialect: Dialect) -> list[Stat]:
    """The stat records of a 9P2000 / .u directory read."""
    reader = _Reader(data, 0, None)
    stats = []
    while reader.pos < len(data):
        stats.append(reader.stat(dialect))
    return stats


def encode_dirent(entry: Dirent) -> bytes:
    """One 9P2000.L directory entry: qid[13] offset[8] type[1] name[s]."""
    q = entry.qid
    return _DIRENT.pack(q.type, q.version, q.path, entry.offset, entry.type) + _string(entry.name)


def dirent_size(name: bytes) -> int:
    return _DIRENT.size + 2 + len(name)


def decode_dirents(data: bytes) -> list[Dirent]:
    reader = _Reader(data, 0, None)
    entries = []
    while reader.pos < len(data):
        qid = reader.qid()
        offset, kind = reader.uint(_U64), reader.uint(_U8)
        entries.append(Dirent(qid, offset, kind, reader.string()))
    return entries


def _string(value: bytes) -> bytes:
    if len(value) > 0xFFFF:
        raise ValueError("string too long for 9P")
    return _U16.pack(len(value)) + value


def _encode_run(run: _Run, args: dict[str, Value]) -> bytes:
    flat: list[int] = []
    for name, code in run.fields:
        value = args[name]
        if code == "Q":
            flat.extend(value)  # type: ignore[arg-type]
        else:
            flat.append(value)  # type: ignore[arg-type]
    return run.struct.pack(*flat)


def _encode_value(code: str, value: Value, dialect: Dialect) -> bytes:
    if code == "s":
        assert isinstance(value, bytes)
        return _string(value)
    if code == "D":
        assert isinstance(value, bytes | bytearray | memoryview)
        return _U32.pack(len(value)) + bytes(value)
    if code == "W":
        assert isinstance(value, list)
        return _U16.pack(len(value)) + b"".join(_string(v) for v in value)  # type: ignore[arg-type]
    if code == "R":
        assert isinstance(value, list)
        return _U16.pack(len(value)) + b"".join(_QID.pack(*v) for v in value)  # type: ignore[misc]
    assert isinstance(value, Stat)
    record = encode_stat(value, dialect)
    return _U16.pack(len(record)) + record


def encode(msg: Message, dialect: Dialect) -> bytes:
    """The frame for a message, size prefix included."""
    try:
        segments, names = _COMPILED[dialect][msg.type]
    except KeyError:
        raise ValueError(f"{msg.type.name} does not exist in {dialect.value}") from None
    args = msg.args
    if args.keys() != names:
        raise ValueError(f"{msg.type.name} needs fields {sorted(names)}")
    body = b"".join(
        _encode_run(seg, args) if isinstance(seg, _Run) else _encode_value(seg[1], args[seg[0]], dialect)
        for seg in segments
    )
    return _HEADER.pack(HEADER_SIZE + len(body), msg.type, msg.tag) + body


def frame_size(header: bytes) -> int:
    """The total size a frame announces in its first four bytes."""
    return _U32.unpack(header)[0]


def decode(frame: bytes, dialect: Dialect) -> Message:
    """Decode one whole frame (size prefix included); WireError if malformed or unknown in the dialect."""
    if len(frame) < HEADER_SIZE:
        raise WireError("frame shorter than a header")
    size, code, tag = _HEADER.unpack_from(frame)
    if size != len(frame):
        raise WireError("frame size does not match its length", tag)
    try:
        kind = MsgType(code)
        segments, _ = _COMPILED[dialect][kind]
    except (ValueError, KeyError):
        raise WireError(f"unknown message type {code} in {dialect.value}", tag, errno.EOPNOTSUPP) from None
    reader = _Reader(frame, HEADER_SIZE, tag)
    args: dict[str, Value] = {}
    for seg in segments:
        if isinstance(seg, _Run):
            reader.run(seg, args)
        else:
            args[seg[0]] = reader.value(seg[1], dialect)
    if reader.pos != size:
        raise WireError(f"{kind.name} has trailing bytes", tag)
    return Message(kind, tag, **args)
