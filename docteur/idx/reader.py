"""Read a version-2 pack index in place, through a byte source: no per-object work at open."""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterator

from docteur.bytesource import ByteSource
from docteur.errors import CorruptImageError

MAGIC = b"\xfftOc"
VERSION = 2
HEADER_SIZE = 8
FANOUT_SIZE = 256 * 4
LARGE_OFFSET_FLAG = 0x80000000
_SMALL_FIRST_BYTES = bytes(range(0x80))
# Up to this many candidates, one read and a substring search of their names beats a binary search in
# Python (and is one request, not several, for a remote image).
_SCAN_BELOW = 256


def idx_length(source: ByteSource, at: int, count: int, pack_bound: int | None = None) -> int:
    """Total length of the index at `at` whose object count is `count`, read from its offset table.

    `pack_bound`, when given, is an upper bound of the PACK's length: under 2 GiB no offset needs the
    large table (git writes one only past 2 GiB), so the table is not read and opening costs nothing per
    object. An index that flags small offsets as large anyway then fails its checksums, or the lookup of
    that offset, as corrupt.
    """
    offsets_at = HEADER_SIZE + FANOUT_SIZE + count * 24
    if pack_bound is not None and pack_bound <= LARGE_OFFSET_FLAG:
        large = 0
    else:
        table = source.read(at + offsets_at, 4 * count)
        if len(table) != 4 * count:
            raise CorruptImageError("pack index is truncated")
        # A large offset has the top bit of its big-endian word set: count those first bytes in C.
        large = len(bytes(table)[::4].translate(None, _SMALL_FIRST_BYTES))
    return offsets_at + 4 * count + 8 * large + 40


class PackIndex:
    """Object id -> PACK offset and CRC32, from the IDX v2 at offset `at` of `source`."""

    def __init__(
        self, source: ByteSource, at: int = 0, *, pack_bound: int | None = None, then: int = 0
    ) -> None:
        """`then`: how many bytes after the IDX the caller reads next (its extension): a remote source
        fetches them with the IDX's trailer."""
        head = bytes(source.read(at, HEADER_SIZE + FANOUT_SIZE))
        if len(head) < HEADER_SIZE + FANOUT_SIZE or head[:4] != MAGIC:
            raise CorruptImageError("no pack index (IDX v2 magic) where the header says")
        (version,) = struct.unpack_from(">I", head, 4)
        if version != VERSION:
            raise CorruptImageError(f"unsupported pack index version {version}")
        self.fanout = struct.unpack_from(">256I", head, HEADER_SIZE)
        self.count = self.fanout[255]
        if list(self.fanout) != sorted(self.fanout):
            raise CorruptImageError("pack index fan-out table is not monotonic")
        self.source = source
        self.at = at
        self.length = idx_length(source, at, self.count, pack_bound)
        if then:
            source.prefetch([(at + self.length - 40, 40 + then)])
        trailer = bytes(source.read(at + self.length - 40, 40))
        if len(trailer) != 40:
            raise CorruptImageError("pack index is truncated")
        self.pack_checksum, self.checksum = trailer[:20], trailer[20:]
        n = self.count
        self._names = at + HEADER_SIZE + FANOUT_SIZE
        self._crcs = self._names + 20 * n
        self._offsets = self._crcs + 4 * n
        self._large = self._offsets + 4 * n
        self._end = at + self.length - 40

    def checksum_ok(self) -> bool:
        return hashlib.sha1(self.source.read(self.at, self.length - 20)).digest() == self.checksum

    def name(self, i: int) -> bytes:
        return bytes(self.source.read(self._names + 20 * i, 20))

    def crc32(self, i: int) -> int:
        return int.from_bytes(self.source.read(self._crcs + 4 * i, 4), "big")

    def offset(self, i: int) -> int:
        value = int.from_bytes(self.source.read(self._offsets + 4 * i, 4), "big")
        if value & LARGE_OFFSET_FLAG:
            at = self._large + 8 * (value & ~LARGE_OFFSET_FLAG)
            if at + 8 > self._end:
                raise CorruptImageError("pack index large offset out of range")
            value = int.from_bytes(self.source.read(at, 8), "big")
        return value

    def find(self, oid: bytes) -> int:
        """Position of `oid` in the index, or -1."""
        if len(oid) != 20:
            return -1
        first = oid[0]
        lo = self.fanout[first - 1] if first else 0
        hi = self.fanout[first]
        read, names = self.source.read, self._names
        while hi - lo > _SCAN_BELOW:
            mid = (lo + hi) // 2
            probe = bytes(read(names + 20 * mid, 20))
            if probe == oid:
                return mid
            if probe < oid:
                lo = mid + 1
            else:
                hi = mid
        if lo >= hi:
            return -1
        candidates = bytes(read(names + 20 * lo, 20 * (hi - lo)))
        # A match must start on a 20-byte boundary: ids are compared whole, never across two names.
        at = candidates.find(oid)
        while at >= 0:
            if not at % 20:
                return lo + at // 20
            at = candidates.find(oid, at + 1)
        return -1

    def lookup(self, oid: bytes) -> int | None:
        """PACK offset of `oid`, or None when the index does not hold it."""
        i = self.find(oid)
        return None if i < 0 else self.offset(i)

    def __contains__(self, oid: bytes) -> bool:
        return self.find(oid) >= 0

    def __iter__(self) -> Iterator[bytes]:
        names = bytes(self.source.read(self._names, 20 * self.count))
        return (names[k : k + 20] for k in range(0, len(names), 20))

    def entries(self) -> Iterator[tuple[bytes, int, int]]:
        """(id, offset, crc32) in index order, read table by table."""
        n = self.count
        crcs = struct.unpack(f">{n}I", self.source.read(self._crcs, 4 * n))
        small = struct.unpack(f">{n}I", self.source.read(self._offsets, 4 * n))
        for i, (oid, crc, value) in enumerate(zip(self, crcs, small, strict=True)):
            yield oid, (self.offset(i) if value & LARGE_OFFSET_FLAG else value), crc
