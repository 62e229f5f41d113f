"""Block sizes: every part of an image starts on a multiple of its block size, a power of two."""

from __future__ import annotations

DEFAULT_BLOCK_SIZE = 512
MIN_BLOCK_SIZE = 512
MAX_BLOCK_SIZE = 1 << 24


def align(n: int, block_size: int) -> int:
    return -(-n // block_size) * block_size


def check_block_size(block_size: int) -> None:
    if not (MIN_BLOCK_SIZE <= block_size <= MAX_BLOCK_SIZE and block_size & (block_size - 1) == 0):
        raise ValueError(f"block size must be a power of two from {MIN_BLOCK_SIZE} to {MAX_BLOCK_SIZE}")


def consistent_block_sizes(pack_end: int, idx_offset: int, data_end: int, size: int | None) -> list[int]:
    """The block sizes, smallest first, that a layout agrees with (images without a section table do
    not record theirs): the IDX starts at the PACK's end rounded up to a block, and a file of `size`
    bytes (None: a device, which a VM may pad) ends at its data's end rounded up. OCaml docteur added a
    whole block where the PACK's end was already aligned."""
    found = []
    block = MIN_BLOCK_SIZE
    while block <= MAX_BLOCK_SIZE:
        idx_ok = idx_offset % block == 0 and 0 <= idx_offset - pack_end <= block
        size_ok = size is None or (size % block == 0 and 0 <= size - data_end <= block)
        if idx_ok and size_ok:
            found.append(block)
        block <<= 1
    return found
