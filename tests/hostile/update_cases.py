"""Hostile update files: an honest OLD/NEW pair and its update, seeded mutations of it, and forged ones.

The pair is made to exercise every operation: both images embed a history (so most entries are copied),
NEW's files grew (binary deltas against OLD's versions), one file is over the in-memory bound (shipped
RAW, streamed), and both images carry an extra section of a kind the PACK cannot give back (carried as
copies and literals). Mutations either leave the digest alone (a damaged file: refused at once) or
re-seal it after changing the header or the decompressed body, so that patch's own checks of every
field are what stands between a forged update and a wrong image.
"""

from __future__ import annotations

import hashlib
import io
import random
import struct
import subprocess
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from gitservers import GIT_ISOLATION, make_repo

from docteur import zstd
from docteur.git.objects import BLOB, OFS_DELTA
from docteur.image.writer import write_image
from docteur.make import make, parse_date
from docteur.pack.writer import entry_header
from docteur.sections.build import SectionData
from docteur.update.delta import delta
from docteur.update.format import (
    COPY,
    DELTA,
    DIGEST_SIZE,
    END,
    LITERAL,
    RAW,
    SCOPY,
    SEND,
    SLIT,
    Header,
    read_header,
    varint,
    zigzag,
)
from docteur.update.parts import ImageParts

from .corpus import DATE, FILES
from .runner import Job
from .update_probe import expectation

CARRIED_KIND = 200
_BIG = b"".join(b"event %07d: nothing happened, again\n" % i for i in range(120_000))  # 4.3 MB


def with_section(image: Path, out: Path, kind: int, data: bytes) -> None:
    """`image` rewritten with one more section of `kind` (not required: readers skip it)."""
    with ImageParts(image) as parts:
        assert parts.table is not None
        p = parts.placement
        sections = [
            SectionData(s.kind, s.flags, bytes(parts.source.read(s.offset, s.length)))
            for s in parts.table.sections
        ]
        idx = bytes(parts.source.read(p.idx_offset, p.idx_length))
        write_image(
            out,
            p.commit,
            (parts.source, 28, p.pack_length),
            idx,
            parts.table.block_size,
            [*sections, SectionData(kind, 0, data)],
        )


@dataclass(frozen=True)
class Pair:
    old: Path
    new: Path
    update: Path
    new_sha256: str  # of NEW's whole file
    old_count: int  # OLD's entries
    old_ofs_delta: int  # an OLD ordinal holding an OFS_DELTA


def build_pair(workdir: Path) -> Pair:
    repo = make_repo(workdir / "repo.git", {**FILES, "big.log": _BIG}, commits=4)
    parent = subprocess.run(
        ["git", "rev-parse", "HEAD~1"], cwd=repo.path, capture_output=True, text=True, env=GIT_ISOLATION
    ).stdout.strip()
    when = parse_date(DATE)
    plain_old, plain_new = workdir / "plain-old.img", workdir / "plain-new.img"
    make(str(repo.path), plain_old, branch=parent, history=True, quiet=True, date=when)
    make(str(repo.path), plain_new, history=True, quiet=True, date=when)
    blocks = [bytes([i]) * (64 << 10) for i in range(1, 4)]
    old, new = workdir / "old.img", workdir / "new.img"
    with_section(plain_old, old, CARRIED_KIND, b"".join(blocks))
    with_section(plain_new, new, CARRIED_KIND, blocks[0] + b"changed" * 100 + blocks[2])
    update = workdir / "pair.update"
    delta(old, new, update)
    with ImageParts(old) as parts:
        ofs = next(k for k in range(parts.count) if parts.pack.entry_header(parts.offsets[k])[0] == OFS_DELTA)
        count = parts.count
    return Pair(old, new, update, hashlib.sha256(new.read_bytes()).hexdigest(), count, ofs)


# -- the update's parts, and putting them back together -------------------------------------------------


def split(update: bytes) -> tuple[Header, bytes]:
    """(header, decompressed body) of an honest update."""
    header, at = read_header(io.BytesIO(update))
    body = zstd.ZstdDecompressor().stream_reader(io.BytesIO(update[at:-DIGEST_SIZE])).read()
    return header, body


def seal(header: bytes, body: bytes, *, compressed: bool = False) -> bytes:
    """An update of these parts with a digest that matches them."""
    frame = body if compressed else zstd.ZstdCompressor(level=3).compress(body)
    data = header + frame
    return data + hashlib.blake2b(data, digest_size=DIGEST_SIZE).digest()


# -- seeded mutations --------------------------------------------------------------------------------------

_EXTREMES = [0, 1, 2, 0x7F, 0x80, 0xFF, 1 << 31, (1 << 32) - 1, 1 << 40, 1 << 47, (1 << 63) - 1]


def flip(update: bytes, rng: random.Random) -> tuple[str, bytes]:
    data = bytearray(update)
    spots = [(rng.randrange(len(data)), rng.randrange(8)) for _ in range(rng.randint(1, 8))]
    for pos, bit in spots:
        data[pos] ^= 1 << bit
    return "flip " + ",".join(f"{p}.{b}" for p, b in spots), bytes(data)


def cut(update: bytes, rng: random.Random) -> tuple[str, bytes]:
    at = rng.randrange(len(update))
    return f"cut at {at}", update[:at]


def header_field(update: bytes, rng: random.Random) -> tuple[str, bytes]:
    header, body = split(update)
    name = rng.choice([n for n in Header._fields if not isinstance(getattr(header, n), bytes)])
    value = getattr(header, name)
    value = rng.choice([*_EXTREMES, value + 1, max(value - 1, 0), value * 2, value // 2, value + 512])
    return f"header {name}={value}", seal(header._replace(**{name: value}).encode(), body)


def header_hash(update: bytes, rng: random.Random) -> tuple[str, bytes]:
    header, body = split(update)
    name = rng.choice(["old_commit", "old_sha256", "new_commit", "new_sha256"])
    value = bytearray(getattr(header, name))
    value[rng.randrange(len(value))] ^= 1 << rng.randrange(8)
    return f"header {name} flipped", seal(header._replace(**{name: bytes(value)}).encode(), body)


def _spot(body: bytes, rng: random.Random) -> int:
    """A position in the body: half the time in its first or last 4 KiB, where the operations are
    dense (copies, headers, the IDX and section modes); elsewhere large shipped data dominates."""
    if rng.random() < 0.5:
        return rng.randrange(len(body))
    edge = min(4096, len(body))
    return rng.randrange(edge) if rng.random() < 0.5 else len(body) - 1 - rng.randrange(edge)


def body_flip(update: bytes, rng: random.Random) -> tuple[str, bytes]:
    header, body = split(update)
    raw = bytearray(body)
    spots = [(_spot(body, rng), rng.randrange(8)) for _ in range(rng.randint(1, 4))]
    for pos, bit in spots:
        raw[pos] ^= 1 << bit
    return "body flip " + ",".join(f"{p}.{b}" for p, b in spots), seal(header.encode(), bytes(raw))


def body_scribble(update: bytes, rng: random.Random) -> tuple[str, bytes]:
    header, body = split(update)
    raw = bytearray(body)
    pos = _spot(body, rng)
    run = bytes(rng.choice([0, 0x7F, 0x80, 0xFF, rng.randrange(256)]) for _ in range(rng.randint(1, 16)))
    raw[pos : pos + len(run)] = run
    return f"body scribble {pos}+{len(run)}", seal(header.encode(), bytes(raw))


def body_varint(update: bytes, rng: random.Random) -> tuple[str, bytes]:
    """An extreme or overlong varint put where one may be read."""
    header, body = split(update)
    pos = _spot(body, rng)
    value = rng.choice(_EXTREMES)
    spelled = varint(value) if rng.random() < 0.7 else b"\xff" * rng.randint(9, 12) + b"\x01"
    keep = rng.random() < 0.5  # insert, or overwrite as many bytes
    raw = body[:pos] + spelled + body[pos + (0 if keep else len(spelled)) :]
    return f"body varint {value} at {pos}", seal(header.encode(), raw)


def body_splice(update: bytes, rng: random.Random) -> tuple[str, bytes]:
    """A run of the body repeated, removed or cut off: operations out of place."""
    header, body = split(update)
    start = _spot(body, rng)
    length = rng.choice([1, 2, 5, 21, 300, len(body)])
    how = rng.choice(["repeat", "remove", "cut"])
    if how == "repeat":
        raw = body[: start + length] + body[start : start + length] + body[start + length :]
    elif how == "remove":
        raw = body[:start] + body[start + length :]
    else:
        raw = body[:start]
    return f"body {how} {start}+{length}", seal(header.encode(), raw)


Family = Callable[[bytes, random.Random], tuple[str, bytes]]
FAMILIES: dict[str, Family] = {
    f.__name__: f
    for f in (flip, cut, header_field, header_hash, body_flip, body_scribble, body_varint, body_splice)
}


def mutations(update: bytes, seed: int, numbers: Iterator[int] | range) -> Iterator[tuple[str, bytes]]:
    """("mutation SEED:N FAMILY: what", bytes) for each case number; families take turns."""
    for n in numbers:
        rng = random.Random(f"update:{seed}:{n}")
        name = list(FAMILIES)[n % len(FAMILIES)]
        what, data = FAMILIES[name](update, rng)
        yield f"mutation {seed}:{n} {name}: {what}", data


# -- forged updates ----------------------------------------------------------------------------------------


def _ops(*parts: bytes) -> bytes:
    return b"".join(parts)


def _copy(first: int, count: int) -> bytes:
    return _ops(bytes([COPY]), varint(zigzag(first)), varint(count))


def _literal(level: int, data: bytes, crc_level: int = 6) -> bytes:
    header = entry_header(BLOB, len(data))
    crc = zlib.crc32(zlib.compress(data, crc_level), zlib.crc32(header))
    return _ops(bytes([LITERAL, level]), varint(len(header)), header, struct.pack("<I", crc), data)


def _wide_window_frame() -> bytes:
    params = zstd.backend.ZstdCompressionParameters.from_level(3, window_log=27, write_content_size=1)
    return zstd.ZstdCompressor(compression_params=params).compress(b"x" * 5000)


def forged(pair: Pair) -> Iterator[tuple[str, bytes]]:
    """(name, update bytes): each forgery in turn, the honest update first (which must apply)."""
    honest = pair.update.read_bytes()
    header, body = split(honest)
    h = header.encode()
    n = pair.old_count
    yield "honest", honest
    yield "empty-file", b""
    yield "magic-only", honest[:8]
    yield "no-body", h + hashlib.blake2b(h, digest_size=DIGEST_SIZE).digest()
    yield "copy-past-end", seal(h, _copy(0, n + 1) + body)
    yield "copy-negative", seal(h, _copy(-5, 3) + body)
    yield "copy-twice", seal(h, _copy(0, 1) + _copy(-1, 1) + body)
    yield "copy-zero", seal(h, _copy(0, 0) + body)
    yield "delta-before-base", seal(h, _copy(pair.old_ofs_delta, 1) + body)
    blob = entry_header(BLOB, 10)
    yield "raw-huge", seal(h, _ops(bytes([RAW]), varint(len(blob)), blob, varint(1 << 40)) + body)
    huge = entry_header(BLOB, 1 << 40)
    yield "literal-huge", seal(h, _ops(bytes([LITERAL, 6]), varint(len(huge)), huge, b"\0" * 4) + body)
    yield "header-too-long", seal(h, _ops(bytes([RAW]), varint(200), b"\x93" * 200) + body)
    yield "zlib-level-wrong", seal(h, _literal(9, b"hello, world") + body)
    yield "zlib-level-10", seal(h, _literal(10, b"hello, world") + body)
    small = entry_header(BLOB, 5000)
    frame = _wide_window_frame()
    yield (
        "delta-wide-window",
        seal(
            h,
            _ops(
                bytes([DELTA, 6]), varint(len(small)), small, b"\0" * 4, varint(0), varint(len(frame)), frame
            ),
        ),
    )
    yield (
        "delta-bad-ordinal",
        seal(
            h, _ops(bytes([DELTA, 6]), varint(len(small)), small, b"\0" * 4, varint(n + 7), varint(3), b"abc")
        ),
    )
    yield "unknown-op", seal(h, b"\x09" + body)
    yield "end-at-once", seal(h, bytes([END]) + body)
    bomb = zstd.ZstdCompressor(level=19).compress(bytes(64 << 20))
    yield "zeros-bomb", seal(h, bomb, compressed=True)
    yield "trailing-frame", seal(h, zstd.ZstdCompressor().compress(body) * 2, compressed=True)
    yield "not-zstd", seal(h, b"\x01\x02\x03 definitely not a zstd frame", compressed=True)
    for name, value in [
        ("objects", header.objects + 1),
        ("objects", 0),
        ("pack_length", header.pack_length + 7),
    ]:
        yield f"header-{name}-{value}", seal(header._replace(**{name: value}).encode(), body)
    big = 1 << 46
    yield "new-size-huge", seal(header._replace(new_end=big, new_size=big).encode(), body)
    yield "old-end-huge", seal(header._replace(old_end=big).encode(), body)
    yield "version-2", seal(h[:8] + b"\x02" + h[9:], body)
    # A carried section that copies past OLD's section, or forged literals: appended where the honest body
    # ends its sections is hard to reach without parsing; a body made of them alone is refused at once.
    yield (
        "section-ops-alone",
        seal(
            h,
            _ops(bytes([SCOPY]), varint(1 << 30), varint(10), bytes([SLIT]), varint(1 << 40), bytes([SEND])),
        ),
    )
    yield "body-raw-tail", seal(h, body + b"\0\0\0")


def jobs(pair: Pair, cases: Iterator[tuple[str, bytes]], scratch: Path) -> Iterator[Job]:
    """One job per (name, update bytes), judged by update_probe against `pair`."""
    scratch.mkdir(parents=True, exist_ok=True)
    expected = expectation(pair.old, pair.new_sha256, scratch / "expected.json")
    for n, (name, data) in enumerate(cases):
        case = scratch / f"case-{n}.update"
        case.write_bytes(data)
        yield Job(
            name if name.startswith("mutation") else f"forged {name}",
            str(case),
            str(expected),
            False,
            "update",
        )
