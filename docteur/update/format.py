"""The update file that `docteur delta` writes and `docteur patch` reads.

    header   magic b"\\x89DTUPD\\r\\n", version u8 (1), then (integers as varints):
             OLD: commit [20], data end, SHA-256 of its bytes up to its data end [32]
             NEW: commit [20], data end, SHA-256 [32], size, block size, PACK length, objects,
                  IDX offset, the IDX offset its header stores, IDX length, entries copied, bytes copied
    body     one zstd frame holding the operations below
    digest   BLAKE2b-128 of the header and the body [16]

Operations, in NEW's order (integers as unsigned LEB128 varints; a signed one zigzag-coded):

    PACK entries, until END (0):
      COPY    1   first (signed, from where the previous COPY ended), count: OLD's entries first ..
                  first + count - 1 in PACK order, an OFS_DELTA's distance re-encoded for NEW
      RAW     2   entry header, [id], length, the entry's zlib bytes
      LITERAL 3   level, entry header, [id], CRC32 of the entry [4], the inflated data (as long as the
                  header's size says); the receiver deflates it at `level`
      DELTA   4   level, entry header, [id], CRC32, OLD entry, frame length, a zstd frame whose
                  dictionary is the content of the object at that OLD entry
      REDELTA 5   the same, the dictionary being that OLD entry's inflated data (a delta's instructions)
    IDX: 0 recomputed, or 1 and its bytes
    sections: 0 (no section table), or 1, the indexed commits (a count, 0 for the header's commit alone,
      then that many ids [20], in the order the refs section gives them), a count of sections, then
      for each section: kind, flags, and
      0 recomputed from NEW's PACK, or 1 carried (its length, its SHA-256 [32]);
      then, for each carried section in order: SCOPY 1 (offset in OLD's section of the same kind,
      length), SLIT 2 (length, bytes), until SEND 0

[id], the object's id [20], is there only for an OFS_DELTA or REF_DELTA entry: a whole object's id is
the hash of what the receiver rebuilds. Whatever can be recomputed is (the IDX, the PACK's header and
trailer, the image's header and padding, the path index): the body holds only what NEW has and OLD lacks.
"""

from __future__ import annotations

import hashlib
import struct
from collections import namedtuple

from docteur import zstd
from docteur.errors import CorruptImageError, UpdateError
from docteur.git.objects import OFS_DELTA, REF_DELTA
from docteur.pack.delta import read_varint

# Not `from typing import TYPE_CHECKING`: patch's start-up on a device counts (as the reader's does).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import BinaryIO

MAGIC = b"\x89DTUPD\r\n"
VERSION = 1
DIGEST_SIZE = 16

COPY, RAW, LITERAL, DELTA, REDELTA = 1, 2, 3, 4, 5
END = SEND = 0
SCOPY, SLIT = 1, 2
RECOMPUTED, CARRIED = 0, 1

# A payload held in memory (LITERAL, DELTA, REDELTA and their dictionaries): larger entries ship RAW,
# streamed, so that delta and patch stay within a few times this whatever the object sizes.
INLINE_MAX = 4 << 20
ENTRY_HEADER_MAX = 32  # type and size, then an OFS distance or a 20-byte base id
MAX_IMAGE = 1 << 48  # no image declares more bytes than this
MAX_WINDOW = 1 << 24  # the largest zstd window a frame of an update may ask for (memory bound)
_CHUNK = 1 << 16


def has_id(header: bytes | memoryview) -> bool:
    """A delta entry's id is shipped; a whole object's is recomputed from its content."""
    return (header[0] >> 4) & 7 in (OFS_DELTA, REF_DELTA)


def varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    out.append(n)
    return bytes(out)


def zigzag(n: int) -> int:
    return n << 1 if n >= 0 else ((-n) << 1) - 1


def unzigzag(n: int) -> int:
    return n >> 1 if not n & 1 else -((n + 1) >> 1)


_FIELDS = (
    "old_commit old_end old_sha256 new_commit new_end new_sha256 new_size block_size pack_length objects "
    "idx_offset stored_idx_offset idx_length copied_entries copied_bytes"
)


class Header(namedtuple("Header", _FIELDS)):
    """The update's header. OLD's and NEW's data ends bound what is hashed: their bytes past it are
    padding (a device may hold anything there); NEW's size adds its zero padding; the stored IDX offset
    is the header's (OCaml docteur's images store one block less than where the IDX lies)."""

    __slots__ = ()
    old_commit: bytes
    old_end: int
    old_sha256: bytes
    new_commit: bytes
    new_end: int
    new_sha256: bytes
    new_size: int
    block_size: int
    pack_length: int
    objects: int
    idx_offset: int
    stored_idx_offset: int
    idx_length: int
    copied_entries: int
    copied_bytes: int

    def encode(self) -> bytes:
        out = [MAGIC, bytes([VERSION])]
        out += [value if isinstance(value, bytes) else varint(value) for value in self]
        return b"".join(out)


_HASHES = {"old_commit": 20, "old_sha256": 32, "new_commit": 20, "new_sha256": 32}


def read_header(source: BinaryIO) -> tuple[Header, int]:
    """The header at the start of `source` and its length; UpdateError unless it is an update of a
    version this docteur reads, with sizes that fit together."""
    raw = source.read(256)
    if raw[: len(MAGIC)] != MAGIC:
        raise UpdateError("not a docteur update (bad magic)")
    if len(raw) < len(MAGIC) + 1 or raw[len(MAGIC)] != VERSION:
        raise UpdateError("an update of a version this docteur does not read")
    pos = len(MAGIC) + 1
    values: list[int | bytes] = []
    for name in Header._fields:
        size = _HASHES.get(name)
        if size is not None:
            if pos + size > len(raw):
                raise UpdateError("update header is truncated")
            values.append(raw[pos : pos + size])
            pos += size
        else:
            value, pos = _varint_at(raw, pos)
            values.append(value)
    header = Header(*values)
    _check(header)
    return header, pos


def _varint_at(raw: bytes, pos: int) -> tuple[int, int]:
    try:
        return read_varint(raw, pos)
    except CorruptImageError:
        raise UpdateError("update header is truncated or malformed") from None


def _check(h: Header) -> None:
    """Sizes that an honest delta writes fit together: anything else is refused before any work."""
    from docteur.blocksize import check_block_size
    from docteur.image.format import PACK_OFFSET

    try:
        check_block_size(h.block_size)
    except ValueError:
        raise UpdateError(f"update names block size {h.block_size}") from None
    pack_end = PACK_OFFSET + h.pack_length
    ok = (
        h.pack_length >= 32
        and max(h.old_end, h.new_size) <= MAX_IMAGE
        and h.objects <= h.pack_length
        and h.idx_offset % h.block_size == 0
        and 0 <= h.idx_offset - pack_end <= h.block_size
        and h.stored_idx_offset in (h.idx_offset, h.idx_offset - h.block_size)
        and 1072 + 28 * h.objects <= h.idx_length <= 1072 + 36 * h.objects
        and h.idx_offset + h.idx_length <= h.new_end <= h.new_size <= h.new_end + h.block_size
        and h.copied_entries <= h.objects
        and h.copied_bytes <= h.pack_length
        and h.old_end >= PACK_OFFSET + 32
    )
    if not ok:
        raise UpdateError("update header declares sizes that do not fit together")


class Window:
    """A file's bytes [start, end) as a read-only stream (what the body's zstd reader consumes)."""

    def __init__(self, source: BinaryIO, start: int, end: int) -> None:
        self._source = source
        self._pos = start
        self._end = end
        source.seek(start)

    def read(self, n: int = -1) -> bytes:
        n = self._end - self._pos if n < 0 else min(n, self._end - self._pos)
        data = self._source.read(n) if n > 0 else b""
        self._pos += len(data)
        return data


def digest_of(source: BinaryIO, end: int) -> bytes:
    """BLAKE2b-128 of the file's bytes [0, end), read in chunks."""
    h = hashlib.blake2b(digest_size=DIGEST_SIZE)
    source.seek(0)
    left = end
    while left:
        chunk = source.read(min(left, 1 << 20))
        if not chunk:
            raise UpdateError("update is truncated")
        h.update(chunk)
        left -= len(chunk)
    return h.digest()


class BodyReader:
    """The body's operations, decompressed as they are read: every read is bounded by what the caller
    asks for, so a forged body cannot make patch hold more than an operation's declared (and checked)
    size."""

    def __init__(self, window: Window) -> None:
        decompressor = zstd.ZstdDecompressor(max_window_size=MAX_WINDOW)
        self._stream = decompressor.stream_reader(window, read_size=_CHUNK, read_across_frames=True)
        self._buffer = b""
        self._at = 0

    def _fill(self, n: int) -> None:
        try:
            more = self._stream.read(max(n, _CHUNK))
        except zstd.ZstdError as e:
            raise UpdateError(f"update body does not decompress: {e}") from None
        if not more:
            raise UpdateError("update body ends early (truncated?)")
        self._buffer = self._buffer[self._at :] + more
        self._at = 0

    def read(self, n: int) -> bytes:
        while len(self._buffer) - self._at < n:
            self._fill(n - (len(self._buffer) - self._at))
        out = self._buffer[self._at : self._at + n]
        self._at += n
        return out

    def chunks(self, n: int) -> Iterator[bytes]:
        """`n` bytes in pieces of at most 64 KiB (RAW entries, literal section bytes: streamed)."""
        while n:
            piece = self.read(min(n, _CHUNK))
            n -= len(piece)
            yield piece

    def byte(self) -> int:
        if self._at >= len(self._buffer):
            self._fill(1)
        value = self._buffer[self._at]
        self._at += 1
        return value

    def varint(self, limit: int = 1 << 64) -> int:
        """A varint, refused (UpdateError) above `limit`."""
        value = shift = 0
        while True:
            byte = self.byte()
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
            if shift > 63:
                raise UpdateError("malformed varint in the update body")
        if value > limit:
            raise UpdateError(f"update body declares {value}, over the bound {limit}")
        return value

    def u32(self) -> int:
        return int(struct.unpack("<I", self.read(4))[0])

    def finish(self) -> None:
        """The body must end exactly here: nothing after the last operation."""
        if self._at < len(self._buffer):
            raise UpdateError("update body has data after its last operation")
        try:
            rest = self._stream.read(1)
        except zstd.ZstdError:
            rest = b"?"
        if rest:
            raise UpdateError("update body has data after its last operation")


class BodyWriter:
    """Operations into one zstd frame written to `out` (a stream_writer of a compressor)."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._next_copy = 0
        self.raw_bytes = 0

    def write(self, *parts: bytes | memoryview) -> None:
        for part in parts:
            self._out.write(part)
            self.raw_bytes += len(part)

    def copy(self, first: int, count: int) -> None:
        self.write(bytes([COPY]), varint(zigzag(first - self._next_copy)), varint(count))
        self._next_copy = first + count

    def entry_start(self, tag: int, header: bytes, oid: bytes, level: int | None = None) -> None:
        self.write(bytes([tag]))
        if level is not None:
            self.write(bytes([level]))
        self.write(varint(len(header)), header)
        if has_id(header):
            self.write(oid)


def compressor() -> zstd.ZstdCompressor:
    """The body's compressor: level 19 with tables sized so that delta stays within its memory goal
    (level 19's own would take ~90 MiB), and a window that a patch may decompress (MAX_WINDOW)."""
    params = zstd.backend.ZstdCompressionParameters.from_level(
        19, window_log=21, chain_log=20, hash_log=19, search_log=6, write_checksum=0, write_content_size=0
    )
    return zstd.ZstdCompressor(compression_params=params)
