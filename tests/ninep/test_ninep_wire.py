"""The codec: every message of every dialect round-trips, bytes match the specs, bad frames are refused."""

from __future__ import annotations

import dataclasses
import errno
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from docteur.ninep import wire
from docteur.ninep.wire import Dialect, Message, MsgType, Qid, Stat, WireError

U8, U16, U32, U64 = (st.integers(0, 2**bits - 1) for bits in (8, 16, 32, 64))
STRINGS = st.binary(max_size=40)
QIDS = st.builds(Qid, U8, U32, U64)


def stats(dialect: Dialect) -> st.SearchStrategy[Stat]:
    fixed = (U16, U32, QIDS, U32, U32, U32, U64, STRINGS, STRINGS, STRINGS, STRINGS)
    if dialect is Dialect.U:
        return st.builds(Stat, *fixed, STRINGS, U32, U32, U32)
    return st.builds(Stat, *fixed)


def values(code: str, dialect: Dialect) -> st.SearchStrategy[wire.Value]:
    return {
        "b": U8,
        "w": U16,
        "d": U32,
        "q": U64,
        "s": STRINGS,
        "Q": QIDS,
        "D": st.binary(max_size=300),
        "W": st.lists(STRINGS, max_size=16),
        "R": st.lists(QIDS, max_size=16),
        "S": stats(dialect),
    }[code]


def messages(dialect: Dialect, kind: MsgType) -> st.SearchStrategy[Message]:
    fields = {name: values(code, dialect) for name, code in wire.layout(dialect, kind)}
    return st.builds(lambda tag, args: Message(kind, tag, **args), U16, st.fixed_dictionaries(fields))


CASES = [(d, k) for d in Dialect for k in wire.LAYOUTS[d]]


def test_every_dialect_has_both_directions_of_each_message() -> None:
    for dialect, layouts in wire.LAYOUTS.items():
        for kind in layouts:
            partner = MsgType(kind + 1 if kind % 2 == 0 else kind - 1)
            errors = {MsgType.RERROR, MsgType.RLERROR}
            assert partner in layouts or kind in errors, (dialect, kind)
    assert MsgType.TREADDIR in wire.LAYOUTS[Dialect.L] and MsgType.TREADDIR not in wire.LAYOUTS[Dialect.U]
    assert MsgType.TSTAT in wire.LAYOUTS[Dialect.P9] and MsgType.TSTAT not in wire.LAYOUTS[Dialect.L]


@pytest.mark.parametrize(("dialect", "kind"), CASES, ids=[f"{d.value}-{k.name}" for d, k in CASES])
def test_round_trip(dialect: Dialect, kind: MsgType) -> None:
    @settings(max_examples=30, deadline=None)
    @given(messages(dialect, kind))
    def check(msg: Message) -> None:
        frame = wire.encode(msg, dialect)
        assert wire.frame_size(frame[:4]) == len(frame)
        assert frame[4] == kind and frame[5:7] == struct.pack("<H", msg.tag)
        assert wire.decode(frame, dialect) == msg

    check()


def test_bytes_match_the_spec() -> None:
    # size[4] Tversion tag[2] msize[4] version[s]
    frame = wire.encode(Message(MsgType.TVERSION, wire.NOTAG, msize=131072, version=b"9P2000.L"), Dialect.L)
    assert frame == struct.pack("<IBHIH", 21, 100, 0xFFFF, 131072, 8) + b"9P2000.L"
    # Twalk fid newfid nwname wname*: Linux sends this to look up "a/b"
    frame = wire.encode(Message(MsgType.TWALK, 1, fid=0, newfid=1, wnames=[b"a", b"bc"]), Dialect.L)
    assert frame == struct.pack("<IBHIIH", 24, 110, 1, 0, 1, 2) + b"\x01\x00a\x02\x00bc"
    # Rlerror is 11 bytes; Rgetattr has a fixed size of 160.
    assert wire.encode(Message(MsgType.RLERROR, 3, ecode=30), Dialect.L) == struct.pack("<IBHI", 11, 7, 3, 30)
    getattr_fields = {name: 0 for name, _ in wire.layout(Dialect.L, MsgType.RGETATTR)}
    getattr_fields["qid"] = Qid(0x80, 0, 1)
    assert len(wire.encode(Message(MsgType.RGETATTR, 1, **getattr_fields), Dialect.L)) == 160
    # The same Tattach differs between dialects: 9P2000.u and .L append n_uname.
    plain = Message(MsgType.TATTACH, 1, fid=0, afid=wire.NOFID, uname=b"nobody", aname=b"")
    unix = Message(MsgType.TATTACH, 1, fid=0, afid=wire.NOFID, uname=b"nobody", aname=b"", n_uname=0)
    assert len(wire.encode(unix, Dialect.U)) == len(wire.encode(plain, Dialect.P9)) + 4


def test_stat_records_differ_by_dialect() -> None:
    stat = Stat(0, 0, Qid(0, 0, 7), 0o644, 1, 2, 3, b"name", b"0", b"0", b"0")
    plain = wire.encode_stat(stat, Dialect.P9)
    assert struct.unpack_from("<H", plain)[0] == len(plain) - 2 == 2 + 4 + 13 + 4 * 3 + 8 + 2 * 4 + 4 + 3
    unix = wire.encode_stat(dataclasses.replace(stat, extension=b"target", n_uid=1), Dialect.U)
    assert len(unix) == len(plain) + 2 + 6 + 12
    assert wire.decode_stats(plain + plain, Dialect.P9) == [stat, stat]
    assert wire.decode_stats(unix, Dialect.U)[0].extension == b"target"


def test_dirents_round_trip() -> None:
    entries = [wire.Dirent(Qid(0x80, 0, 9), 1, 4, b"."), wire.Dirent(Qid(0, 0, 10), 2, 8, b"f\xff")]
    data = b"".join(wire.encode_dirent(e) for e in entries)
    assert len(data) == sum(wire.dirent_size(e.name) for e in entries)
    assert wire.decode_dirents(data) == entries


def _frame(kind: int, tag: int, body: bytes, size: int | None = None) -> bytes:
    return struct.pack("<IBH", 7 + len(body) if size is None else size, kind, tag) + body


@pytest.mark.parametrize(
    ("frame", "tag", "code"),
    [
        (b"\x05\x00\x00", None, errno.EPROTO),  # shorter than a header
        (_frame(100, 1, b"", size=99), 1, errno.EPROTO),  # size field disagrees with the frame
        (_frame(250, 2, b""), 2, errno.EOPNOTSUPP),  # no such type
        (_frame(MsgType.TREADDIR, 3, b"\0" * 16), 3, errno.EOPNOTSUPP),  # a .L message in 9P2000.u
        (_frame(MsgType.TCLUNK, 4, b"\0\0"), 4, errno.EPROTO),  # truncated fid
        (_frame(MsgType.TCLUNK, 5, b"\0" * 5), 5, errno.EPROTO),  # trailing byte
        (_frame(MsgType.TVERSION, 6, struct.pack("<IH", 8192, 50) + b"9P2000"), 6, errno.EPROTO),  # string
        (_frame(MsgType.TWALK, 7, struct.pack("<IIH", 0, 1, 3) + b"\x01\x00a"), 7, errno.EPROTO),  # names
        (_frame(MsgType.TREAD, 8, struct.pack("<IQ", 0, 0)), 8, errno.EPROTO),  # missing count
    ],
)
def test_malformed_frames_are_refused(frame: bytes, tag: int | None, code: int) -> None:
    with pytest.raises(WireError) as caught:
        wire.decode(frame, Dialect.U)
    assert (caught.value.tag, caught.value.errno) == (tag, code)


def test_every_truncation_of_a_stat_is_refused() -> None:
    stat = Stat(0, 0, Qid(0, 0, 7), 0o644, 1, 2, 3, b"name", b"u", b"g", b"m", b"ext", 1, 2, 3)
    good = wire.encode(Message(MsgType.TWSTAT, 9, fid=1, stat=stat), Dialect.U)
    for cut in range(11, len(good)):
        bad = struct.pack("<I", cut) + good[4:cut]
        with pytest.raises(WireError):
            wire.decode(bad, Dialect.U)
    # A stat whose inner size disagrees with the outer one.
    inner = wire.encode_stat(stat, Dialect.U)
    bad = _frame(MsgType.TWSTAT, 9, struct.pack("<IH", 1, len(inner) + 1) + inner + b"\0")
    with pytest.raises(WireError, match="stat"):
        wire.decode(bad, Dialect.U)


def test_encoding_refuses_what_the_wire_cannot_carry() -> None:
    with pytest.raises(ValueError, match="does not exist"):
        wire.encode(Message(MsgType.TREADDIR, 1, fid=0, offset=0, count=1), Dialect.P9)
    with pytest.raises(ValueError, match="needs fields"):
        wire.encode(Message(MsgType.TCLUNK, 1), Dialect.L)
    with pytest.raises(ValueError, match="too long"):
        wire.encode(Message(MsgType.RREADLINK, 1, target=b"x" * 70000), Dialect.L)
