"""The blobs section of a zstd image: where the blobs lie that no indexed tree reaches (those of the
history an image holds with --history), found by id. The blobs of the indexed trees are found through
the path index, which already holds their ids.

    magic b"DTBL", version u16 (1), zero u16, count u32
    count entries, sorted by id: blob id [20], first frame u32, offset in it u32, size u64
"""

from __future__ import annotations

import bisect
import struct
from collections.abc import Iterator

from docteur.bytesource import ByteSource
from docteur.errors import CorruptImageError

MAGIC = b"DTBL"
VERSION = 1
HEAD = struct.Struct("<4sHHI")
ENTRY = struct.Struct("<20sIIQ")

Location = tuple[int, int, int]  # (frame, offset, size), as the frames section reads them


def encode(blobs: dict[bytes, Location]) -> bytes:
    out = [HEAD.pack(MAGIC, VERSION, 0, len(blobs))]
    out += [ENTRY.pack(oid, *blobs[oid]) for oid in sorted(blobs)]
    return b"".join(out)


class BlobTable:
    """The section read in place: a lookup is a binary search, reading one entry a step."""

    def __init__(self, source: ByteSource, offset: int, length: int) -> None:
        head = bytes(source.read(offset, HEAD.size))
        if len(head) != HEAD.size:
            raise CorruptImageError("blobs section is truncated")
        magic, version, zero, self.count = HEAD.unpack(head)
        if magic != MAGIC or version != VERSION or zero or HEAD.size + ENTRY.size * self.count != length:
            raise CorruptImageError("blobs section: not a blobs section this docteur reads")
        self._source = source
        self._at = offset + HEAD.size

    def _entry(self, i: int) -> tuple[bytes, int, int, int]:
        raw = bytes(self._source.read(self._at + ENTRY.size * i, ENTRY.size))
        if len(raw) != ENTRY.size:
            raise CorruptImageError("blobs section is truncated")
        return ENTRY.unpack(raw)  # type: ignore[return-value]

    def find(self, oid: bytes) -> Location | None:
        ids = _Ids(self)
        i = bisect.bisect_left(ids, oid)
        if i == self.count or ids[i] != oid:
            return None
        _, frame, offset, size = self._entry(i)
        return frame, offset, size

    def __iter__(self) -> Iterator[tuple[bytes, Location]]:
        for i in range(self.count):
            oid, frame, offset, size = self._entry(i)
            yield oid, (frame, offset, size)


class _Ids:
    """The table's ids as a sequence, for bisect."""

    def __init__(self, table: BlobTable) -> None:
        self._table = table

    def __len__(self) -> int:
        return self._table.count

    def __getitem__(self, i: int) -> bytes:
        return self._table._entry(i)[0]
