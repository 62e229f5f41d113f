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
    # The hot loop of every delta read: instruction fields unrolled, one bounds check per copy, and the
    # output grown as a list of slices (measured faster than a bytearray). A read past the end of `delta`
    # raises IndexError; a short insert shows as a short result.
    parts: list[bytes] = []
    append = parts.append
    produced = 0
    end = len(delta)
    try:
        while pos < end:
            cmd = delta[pos]
            pos += 1
            if cmd & 0x80:
                offset = size = 0
                if cmd & 0x01:
                    offset = delta[pos]
                    pos += 1
                if cmd & 0x02:
                    offset |= delta[pos] << 8
                    pos += 1
                if cmd & 0x04:
                    offset |= delta[pos] << 16
                    pos += 1
                if cmd & 0x08:
                    offset |= delta[pos] << 24
                    pos += 1
                if cmd & 0x10:
                    size = delta[pos]
                    pos += 1
                if cmd & 0x20:
                    size |= delta[pos] << 8
                    pos += 1
                if cmd & 0x40:
                    size |= delta[pos] << 16
                    pos += 1
                if not size:
                    size = 0x10000
                if offset + size > base_size:
                    raise CorruptImageError("delta copies outside its base")
                produced += size
                if produced > result_size:  # before the copy: memory stays bounded by the declared size
                    raise CorruptImageError("delta produces more than its declared size")
                append(base[offset : offset + size])
            elif cmd:
                append(delta[pos : pos + cmd])
                pos += cmd
                produced += cmd
            else:
                raise CorruptImageError("reserved delta instruction 0")
    except IndexError:
        raise CorruptImageError("truncated delta copy instruction") from None
    out = b"".join(parts)
    if len(out) != result_size:
        raise CorruptImageError(f"delta produces {len(out)} bytes, {result_size} declared")
    return out
