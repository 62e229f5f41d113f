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
