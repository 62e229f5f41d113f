"""Read a version-2 pack index in place (a memoryview over the image): no per-object work at open."""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterator

from docteur.errors import CorruptImageError

# Not `from typing import TYPE_CHECKING`: importing typing costs the guest's reader a noticeable start-up.
TYPE_CHECKING = False

if TYPE_CHECKING:
    from typing import Protocol

    class Searchable(Protocol):
        def find(self, sub: bytes, start: int, end: int, /) -> int: ...


MAGIC = b"\xfftOc"
VERSION = 2
HEADER_SIZE = 8
FANOUT_SIZE = 256 * 4
LARGE_OFFSET_FLAG = 0x80000000
_SMALL_FIRST_BYTES = bytes(range(0x80))
# Below this many candidates a substring search of the names table beats a binary search in Python.
_SCAN_BELOW = 256


def idx_length(buf: memoryview, count: int, pack_bound: int | None = None) -> int:
    """Total length of the index whose object count is `count`, read from its offset table.

    `pack_bound`, when given, is an upper bound of the PACK's length: under 2 GiB no offset needs the
    large table (git writes one only past 2 GiB), so the table is not scanned and opening costs nothing
    per object. An index that flags small offsets as large anyway then fails its checksums, or the lookup
    of that offset, as corrupt.
    """
    offsets_at = HEADER_SIZE + FANOUT_SIZE + count * 24
    table = buf[offsets_at : offsets_at + 4 * count]
    if len(table) != 4 * count:
        raise CorruptImageError("pack index is truncated")
    if pack_bound is not None and pack_bound <= LARGE_OFFSET_FLAG:
        large = 0
    else:
        # A large offset has the top bit of its big-endian word set: count those first bytes in C.
        large = len(bytes(table)[::4].translate(None, _SMALL_FIRST_BYTES))
    return offsets_at + 4 * count + 8 * large + 40


class PackIndex:
    """Object id -> PACK offset and CRC32, from an IDX v2 held in `buf` (which starts at the magic)."""

    def __init__(
        self,
        buf: memoryview,
        *,
        origin: tuple[Searchable, int] | None = None,
        pack_bound: int | None = None,
    ) -> None:
        """`origin`, when given, is the object `buf` views and the offset of `buf` in it: lookups then
        search the names table in place with its `find` (bytes and mmap have one) instead of copying.
        `pack_bound` bounds the PACK's length (see idx_length)."""
        if len(buf) < HEADER_SIZE + FANOUT_SIZE + 40 or bytes(buf[:4]) != MAGIC:
            raise CorruptImageError("no pack index (IDX v2 magic) where the header says")
        (version,) = struct.unpack_from(">I", buf, 4)
        if version != VERSION:
            raise CorruptImageError(f"unsupported pack index version {version}")
        self.fanout = struct.unpack_from(">256I", buf, HEADER_SIZE)
        self.count = self.fanout[255]
        if list(self.fanout) != sorted(self.fanout):
            raise CorruptImageError("pack index fan-out table is not monotonic")
        self.length = idx_length(buf, self.count, pack_bound)
        if len(buf) < self.length:
            raise CorruptImageError("pack index is truncated")
        self.buf = buf[: self.length]
        n = self.count
        self._names = HEADER_SIZE + FANOUT_SIZE
        self._crcs = self._names + 20 * n
        self._offsets = self._crcs + 4 * n
        self._large = self._offsets + 4 * n
        self.pack_checksum = bytes(self.buf[self.length - 40 : self.length - 20])
        self.checksum = bytes(self.buf[self.length - 20 :])
        # Without an origin, lookups stay a binary search over the view (no copy of the table).
        self._haystack, base = origin if origin is not None else (None, 0)
        self._scan_below = _SCAN_BELOW if origin is not None else 0
        self._names_at = base + self._names

    def checksum_ok(self) -> bool:
        return hashlib.sha1(self.buf[: self.length - 20]).digest() == self.checksum

    def name(self, i: int) -> bytes:
        at = self._names + 20 * i
        return bytes(self.buf[at : at + 20])

    def crc32(self, i: int) -> int:
        return struct.unpack_from(">I", self.buf, self._crcs + 4 * i)[0]

    def offset(self, i: int) -> int:
        (value,) = struct.unpack_from(">I", self.buf, self._offsets + 4 * i)
        if value & LARGE_OFFSET_FLAG:
            at = self._large + 8 * (value & ~LARGE_OFFSET_FLAG)
            if at + 8 > self.length - 40:
                raise CorruptImageError("pack index large offset out of range")
            (value,) = struct.unpack_from(">Q", self.buf, at)
        return value

    def find(self, oid: bytes) -> int:
        """Position of `oid` in the index, or -1."""
        if len(oid) != 20:
            return -1
        first = oid[0]
        lo = self.fanout[first - 1] if first else 0
        hi = self.fanout[first]
        buf, base = self.buf, self._names
        while hi - lo > self._scan_below:
            mid = (lo + hi) // 2
            at = base + 20 * mid
            probe = buf[at : at + 20].tobytes()
            if probe == oid:
                return mid
            if probe < oid:
                lo = mid + 1
            else:
                hi = mid
        haystack, names = self._haystack, self._names_at
        if haystack is None or lo >= hi:
            return -1
        # A match must start on a 20-byte boundary: ids are compared whole, never across two names.
        stop = names + 20 * hi
        at = haystack.find(oid, names + 20 * lo, stop)
        while at >= 0:
            i, misaligned = divmod(at - names, 20)
            if not misaligned:
                return i
            at = haystack.find(oid, at + 1, stop)
        return -1

    def lookup(self, oid: bytes) -> int | None:
        """PACK offset of `oid`, or None when the index does not hold it."""
        i = self.find(oid)
        return None if i < 0 else self.offset(i)

    def __contains__(self, oid: bytes) -> bool:
        return self.find(oid) >= 0

    def __iter__(self) -> Iterator[bytes]:
        return (self.name(i) for i in range(self.count))

    def entries(self) -> Iterator[tuple[bytes, int, int]]:
        """(id, offset, crc32) in index order."""
        return ((self.name(i), self.offset(i), self.crc32(i)) for i in range(self.count))
