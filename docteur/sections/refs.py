"""The refs section: the names of the commits an image embeds, in the order docteur-make was given them
(the header's commit is the first ref's).

    magic b"DTRF", version u16 (1), zero u16, count u32
    per ref: name length u16, name (UTF-8 bytes as Git stores them), commit id [20]
"""

from __future__ import annotations

import struct

from docteur.errors import CorruptImageError

MAGIC = b"DTRF"
VERSION = 1
HEAD = struct.Struct("<4sHHI")
NAME_LENGTH = struct.Struct("<H")
MAX_NAME = 4096  # git refuses longer ref names long before this


def encode(refs: list[tuple[bytes, bytes]]) -> bytes:
    """`refs`: (full name, raw commit id), unique names, the header's commit first."""
    out = [HEAD.pack(MAGIC, VERSION, 0, len(refs))]
    for name, commit in refs:
        out += [NAME_LENGTH.pack(len(name)), name, commit]
    return b"".join(out)


def decode(data: bytes) -> list[tuple[bytes, bytes]]:
    if len(data) < HEAD.size:
        raise CorruptImageError("refs section is truncated")
    magic, version, zero, count = HEAD.unpack_from(data)
    if magic != MAGIC or version != VERSION or zero:
        raise CorruptImageError("refs section: not a refs section this docteur reads")
    refs: list[tuple[bytes, bytes]] = []
    at = HEAD.size
    for _ in range(count):
        if at + NAME_LENGTH.size > len(data):
            raise CorruptImageError("refs section is truncated")
        (length,) = NAME_LENGTH.unpack_from(data, at)
        at += NAME_LENGTH.size
        name, commit = data[at : at + length], data[at + length : at + length + 20]
        if length == 0 or length > MAX_NAME or len(commit) != 20 or b"\0" in name or b"\n" in name:
            raise CorruptImageError("refs section: a malformed ref")
        refs.append((name, commit))
        at += length + 20
    if at != len(data):
        raise CorruptImageError("refs section: stray bytes after its refs")
    if len({name for name, _ in refs}) != len(refs):
        raise CorruptImageError("refs section: a ref is named twice")
    return refs
