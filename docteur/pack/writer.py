"""Write a PACK of whole (undeltified) objects, streaming, with what an index needs for each entry."""

from __future__ import annotations

import hashlib
import struct
import zlib
from typing import BinaryIO

from docteur.pack.reader import PACK_MAGIC


def entry_header(kind: int, size: int) -> bytes:
    out = bytearray([(kind << 4) | (size & 0x0F)])
    size >>= 4
    while size:
        out[-1] |= 0x80
        out.append(size & 0x7F)
        size >>= 7
    return bytes(out)


def ofs_distance(distance: int) -> bytes:
    """An OFS_DELTA's distance back to its base, as git writes it (big-endian base 128, each
    continued byte one less, so that every distance has exactly one spelling)."""
    out = bytearray([distance & 0x7F])
    distance >>= 7
    while distance:
        distance -= 1
        out.append(0x80 | (distance & 0x7F))
        distance >>= 7
    return bytes(reversed(out))


class PackWriter:
    """Append objects to `out` (a seekable file opened for reading and writing), then `finish()`.

    The PACK header holds the object count, unknown until the last object is added (duplicates are
    skipped), so `finish()` patches the count and then checksums the file.
    """

    def __init__(self, out: BinaryIO, level: int = zlib.Z_DEFAULT_COMPRESSION) -> None:
        self._out = out
        self._level = level
        self._offset = 12
        self.entries: list[tuple[bytes, int, int]] = []  # (raw id, offset, crc32)
        self._ids: set[bytes] = set()
        out.write(PACK_MAGIC + struct.pack(">II", 2, 0))

    def __contains__(self, oid: bytes) -> bool:
        return oid in self._ids

    def add(self, oid: bytes, kind: int, data: bytes) -> None:
        """Append an object once; a second add of the same id is a no-op (git rejects duplicates)."""
        if oid in self._ids:
            return
        raw = entry_header(kind, len(data)) + zlib.compress(data, self._level)
        self._ids.add(oid)
        self.entries.append((oid, self._offset, zlib.crc32(raw)))
        self._out.write(raw)
        self._offset += len(raw)

    def finish(self) -> bytes:
        """Patch the object count, append the SHA-1 trailer, and return it."""
        out = self._out
        out.seek(8)
        out.write(struct.pack(">I", len(self.entries)))
        out.flush()
        out.seek(0)
        sha = hashlib.sha1()
        while chunk := out.read(1 << 20):
            sha.update(chunk)
        checksum = sha.digest()
        out.seek(0, 2)
        out.write(checksum)
        out.flush()
        return checksum
