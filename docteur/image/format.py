"""Byte layout of a docteur image, compatible with OCaml docteur's disk.img.

0      20-byte commit id (raw)
20     int64 little-endian: absolute offset of the IDX
28     the Git PACK
...    zeros up to a multiple of the block size
IDX    the pack index, version 2
...    zeros up to a multiple of the block size
"""

from __future__ import annotations

import struct
from collections import namedtuple

from docteur.blocksize import MAX_BLOCK_SIZE, MIN_BLOCK_SIZE
from docteur.bytesource import ByteSource
from docteur.errors import CorruptImageError
from docteur.idx.reader import MAGIC as IDX_MAGIC
from docteur.idx.reader import PackIndex

HEADER = struct.Struct("<20sq")
AFTER_IDX = 64 << 10
PACK_OFFSET = HEADER.size  # 28


def encode_header(commit: bytes, idx_offset: int) -> bytes:
    return HEADER.pack(commit, idx_offset)


class Placement(namedtuple("Placement", "commit stored_idx_offset idx_offset idx_length pack_length")):
    """Where the header's parts lie (the PACK and the IDX); every length comes from the header and the IDX."""

    __slots__ = ()
    commit: bytes
    stored_idx_offset: int
    idx_offset: int
    idx_length: int
    pack_length: int

    @property
    def idx_end(self) -> int:
        return self.idx_offset + self.idx_length


def _idx_candidates(stored: int) -> list[int]:
    # OCaml docteur stored round-up(PACK length) for an IDX written at round-up(28 + PACK length): for those
    # images the IDX lies one block after the stored offset. The block size is not recorded, but it divides
    # the stored offset: try the stored offset, then one block further for each power of two that divides it.
    candidates = [stored]
    block = MIN_BLOCK_SIZE
    while block <= MAX_BLOCK_SIZE and stored % block == 0:
        candidates.append(stored + block)
        block <<= 1
    return candidates


def _pack_end(source: ByteSource, idx_offset: int, pack_checksum: bytes) -> int:
    """End of the PACK: its trailing checksum is the last non-zero data before the IDX's padding."""
    end = idx_offset
    while end > PACK_OFFSET:
        start = max(PACK_OFFSET, end - 4096)
        stripped = len(bytes(source.read(start, end - start)).rstrip(b"\0"))
        if stripped:
            end = start + stripped
            break
        end = start
    # The checksum may itself end in zero bytes: it ends somewhere in [end, end + 20).
    tail_at = max(PACK_OFFSET, end - 20)
    tail = bytes(source.read(tail_at, min(end + 20, idx_offset) - tail_at))
    for candidate in range(end, min(end + 20, idx_offset) + 1):
        if (
            candidate - 20 >= PACK_OFFSET
            and tail[candidate - 20 - tail_at : candidate - tail_at] == pack_checksum
        ):
            return candidate
    raise CorruptImageError("the PACK's checksum does not match the one the IDX records")


def locate(source: ByteSource) -> tuple[Placement, PackIndex]:
    """Parse the header, find the IDX (tolerating OCaml docteur's off-by-one-block offset) and the PACK."""
    head = bytes(source.read(0, PACK_OFFSET))
    if len(head) < PACK_OFFSET or source.size < PACK_OFFSET + 32:
        raise CorruptImageError("image is too small to hold a header and a PACK")
    commit, stored = HEADER.unpack(head)
    if not PACK_OFFSET < stored < source.size:
        raise CorruptImageError(f"header names IDX offset {stored}, outside the image")
    for offset in _idx_candidates(stored):
        if bytes(source.read(offset, 4)) == IDX_MAGIC:
            break
    else:
        raise CorruptImageError(f"no pack index at offset {stored} named by the header")
    # What usually follows the IDX (the section table, the path index's first records) comes with its
    # trailer: one request, not three, for a remote image.
    index = PackIndex(source, offset, pack_bound=offset - PACK_OFFSET, then=AFTER_IDX)
    pack_end = _pack_end(source, offset, index.pack_checksum)
    return Placement(commit, stored, offset, index.length, pack_end - PACK_OFFSET), index
