"""The section table: found from the IDX's end, it says where each section of the extension lies.

    offset  size      (little-endian)
    0       8         magic b"\\x89DOCTEUR"
    8       4         version (1)
    12      4         block size of the image
    16      4         number of sections N
    20      4         zero
    24      56 * N    kind u32, flags u32, offset u64 (from the image's start), length u64, SHA-256
    24+56N  32        SHA-256 of the bytes above

The table starts at the IDX's end rounded up to the block size, and each section at a block boundary
after it, in table order; zeros pad every gap and the image's end. The file's size is never used: a VM
pads a block device with zeros, which reads as "no more sections".
"""

from __future__ import annotations

import hashlib
import struct
from collections import namedtuple

from docteur.blocksize import MAX_BLOCK_SIZE, MIN_BLOCK_SIZE, align, check_block_size
from docteur.bytesource import ByteSource
from docteur.errors import CorruptImageError
from docteur.sections import NAMES

MAGIC = b"\x89DOCTEUR"
VERSION = 1
HEAD = struct.Struct("<8sIIII")
ENTRY = struct.Struct("<IIQQ32s")
DIGEST = 32
MAX_SECTIONS = 256
REQUIRED = 1  # flag: a reader that does not know this kind cannot read the image correctly


class Section(namedtuple("Section", "kind flags offset length checksum")):
    __slots__ = ()
    kind: int
    flags: int
    offset: int
    length: int
    checksum: bytes  # SHA-256 of the section's bytes

    @property
    def name(self) -> str:
        return NAMES.get(self.kind, f"kind {self.kind}")

    @property
    def end(self) -> int:
        return self.offset + self.length


class SectionTable(namedtuple("SectionTable", "offset length block_size sections")):
    __slots__ = ()
    offset: int
    length: int
    block_size: int
    sections: tuple[Section, ...]

    def find(self, kind: int) -> Section | None:
        return next((s for s in self.sections if s.kind == kind), None)

    @property
    def end(self) -> int:
        """Where the image's last section ends (the table's end when it lists none)."""
        return max([self.offset + self.length, *(s.end for s in self.sections)])


def table_length(count: int) -> int:
    return HEAD.size + ENTRY.size * count + DIGEST


def place(idx_end: int, block_size: int, lengths: list[int]) -> tuple[int, list[int], int]:
    """(table offset, each section's offset, the image's size) for sections of these lengths."""
    table = align(idx_end, block_size)
    at = align(table + table_length(len(lengths)), block_size)
    offsets = []
    for length in lengths:
        offsets.append(at)
        at = align(at + length, block_size)
    return table, offsets, at


def encode_table(block_size: int, sections: list[Section]) -> bytes:
    body = HEAD.pack(MAGIC, VERSION, block_size, len(sections), 0) + b"".join(
        ENTRY.pack(*s) for s in sections
    )
    return body + hashlib.sha256(body).digest()


def _candidates(idx_end: int) -> list[int]:
    """Where a table may start: the IDX's end rounded up to each possible block size, nearest first."""
    found: list[int] = []
    block = MIN_BLOCK_SIZE
    while block <= MAX_BLOCK_SIZE:
        at = align(idx_end, block)
        if at not in found:
            found.append(at)
        block <<= 1
    return found


def locate_table(source: ByteSource, idx_end: int) -> SectionTable | None:
    """The section table after an IDX ending at `idx_end`, or None for an image without one."""
    for at in _candidates(idx_end):
        magic = bytes(source.read(at, len(MAGIC)))
        if magic == MAGIC:
            return _parse(source, at, idx_end)
        if magic.strip(b"\0"):
            return None  # not padding and not a table: bytes a newer layout or a damaged image put here
    return None


def _parse(source: ByteSource, at: int, idx_end: int) -> SectionTable:
    head = bytes(source.read(at, HEAD.size))
    if len(head) < HEAD.size:
        raise CorruptImageError("section table is truncated")
    _, version, block_size, count, zero = HEAD.unpack(head)
    if version != VERSION:
        raise CorruptImageError(f"section table version {version} is not one this docteur reads")
    if zero:
        raise CorruptImageError("section table: its reserved field is not zero")
    if count > MAX_SECTIONS:
        raise CorruptImageError(f"section table lists {count} sections, over {MAX_SECTIONS}")
    try:
        check_block_size(block_size)
    except ValueError:
        raise CorruptImageError(f"section table names block size {block_size}") from None
    if at != align(idx_end, block_size):
        raise CorruptImageError("section table is not at the IDX's end rounded up to its block size")
    length = table_length(count)
    raw = bytes(source.read(at, length))
    if len(raw) != length:
        raise CorruptImageError("section table is truncated")
    if hashlib.sha256(raw[:-DIGEST]).digest() != raw[-DIGEST:]:
        raise CorruptImageError("section table checksum mismatch")
    sections = tuple(Section(*ENTRY.unpack_from(raw, HEAD.size + ENTRY.size * i)) for i in range(count))
    previous_end = at + length
    for s in sections:
        if s.offset < previous_end or s.offset % block_size:
            raise CorruptImageError(f"section table: {s.name} section overlaps or is misaligned")
        if s.end > source.size:
            raise CorruptImageError(f"{s.name} section runs past the end of the image (truncated?)")
        if s.kind not in NAMES and s.flags & REQUIRED:
            raise CorruptImageError(f"the image needs section {s.name}, which this docteur does not know")
        previous_end = s.end
    return SectionTable(at, length, block_size, sections)
