"""Write a version-2 pack index byte-identical to the one `git index-pack` writes for the same PACK."""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable

from docteur.idx.reader import LARGE_OFFSET_FLAG, MAGIC, VERSION


def encode_index(entries: Iterable[tuple[bytes, int, int]], pack_checksum: bytes) -> bytes:
    """`entries` are (raw id, PACK offset, CRC32 of the raw entry); ids must be unique."""
    ordered = sorted(entries)
    fanout = [0] * 256
    for oid, _, _ in ordered:
        fanout[oid[0]] += 1
    total = 0
    for i in range(256):
        total += fanout[i]
        fanout[i] = total
    small: list[int] = []
    large: list[int] = []
    for _, offset, _ in ordered:
        if offset < LARGE_OFFSET_FLAG:
            small.append(offset)
        else:
            small.append(LARGE_OFFSET_FLAG | len(large))
            large.append(offset)
    n = len(ordered)
    body = b"".join(
        [
            MAGIC,
            struct.pack(">I", VERSION),
            struct.pack(">256I", *fanout),
            b"".join(oid for oid, _, _ in ordered),
            struct.pack(f">{n}I", *(crc for _, _, crc in ordered)),
            struct.pack(f">{n}I", *small),
            struct.pack(f">{len(large)}Q", *large),
            pack_checksum,
        ]
    )
    return body + hashlib.sha1(body).digest()
