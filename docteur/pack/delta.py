"""Git's binary delta format: apply a delta to its base, with every bound checked."""

from __future__ import annotations

from docteur.errors import CorruptImageError


def read_varint(data: bytes, pos: int) -> tuple[int, int]:
    """Little-endian base-128 size as used in delta headers: (value, next position)."""
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise CorruptImageError("truncated delta header")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def delta_sizes(delta: bytes) -> tuple[int, int, int]:
    """(base size, result size, position of the first instruction)."""
    base_size, pos = read_varint(delta, 0)
    result_size, pos = read_varint(delta, pos)
    return base_size, result_size, pos


def apply_delta(base: bytes, delta: bytes, max_size: int) -> bytes:
    """The object `delta` describes; its declared result may not exceed `max_size` (delta bombs)."""
    base_size, result_size, pos = delta_sizes(delta)
    if result_size > max_size:
        raise CorruptImageError(f"delta declares a {result_size}-byte result, over the maximum")
    if base_size != len(base):
        raise CorruptImageError(f"delta expects a base of {base_size} bytes, got {len(base)}")
    parts: list[bytes] = []
    produced = 0
    end = len(delta)
    while pos < end:
        cmd = delta[pos]
        pos += 1
        if cmd & 0x80:
            offset = size = 0
            for bit, shift in ((0x01, 0), (0x02, 8), (0x04, 16), (0x08, 24)):
                if cmd & bit:
                    if pos >= end:
                        raise CorruptImageError("truncated delta copy instruction")
                    offset |= delta[pos] << shift
                    pos += 1
            for bit, shift in ((0x10, 0), (0x20, 8), (0x40, 16)):
                if cmd & bit:
                    if pos >= end:
                        raise CorruptImageError("truncated delta copy instruction")
                    size |= delta[pos] << shift
                    pos += 1
            size = size or 0x10000
            if offset + size > base_size:
                raise CorruptImageError("delta copies outside its base")
            parts.append(base[offset : offset + size])
        elif cmd:
            if pos + cmd > end:
                raise CorruptImageError("truncated delta insert instruction")
            parts.append(delta[pos : pos + cmd])
            pos += cmd
        else:
            raise CorruptImageError("reserved delta instruction 0")
        produced += size if cmd & 0x80 else cmd
        if produced > result_size:
            raise CorruptImageError("delta produces more than its declared size")
    if produced != result_size:
        raise CorruptImageError("delta produces less than its declared size")
    return b"".join(parts)
