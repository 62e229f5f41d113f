"""What a shipped entry's payload costs: a binary delta (a zstd frame whose dictionary is an object OLD
holds, as `zstd --patch-from` does for files) and the zlib level that deflates it back to NEW's bytes."""

from __future__ import annotations

import zlib

from docteur import zstd
from docteur.errors import UpdateError
from docteur.update.format import MAX_WINDOW

# Every level that sets a zlib stream's FLEVEL bits to these values, most common first: git and dulwich
# deflate at the default level (6) unless configured otherwise.
_LEVELS_OF_FLEVEL = {2: (6,), 0: (1, 0), 1: (2, 3, 4, 5), 3: (9, 7, 8)}


def _dictionary(base: bytes) -> zstd.ZstdCompressionDict:
    return zstd.ZstdCompressionDict(base, dict_type=zstd.backend.DICT_TYPE_RAWCONTENT)


def _compressor(size: int, base: bytes = b"") -> zstd.ZstdCompressor:
    """Level 19 for `size` bytes (against `base`): the window covers the base and the target (a match
    may reach anywhere in the dictionary) up to MAX_WINDOW, and the search tables are capped at 2^19
    entries so that large objects stay within the memory goal (level 19's own take ~90 MiB)."""
    params = zstd.backend.ZstdCompressionParameters.from_level(19, source_size=size, dict_size=len(base))
    window = max(10, min((len(base) + size).bit_length(), MAX_WINDOW.bit_length() - 1))
    params = zstd.backend.ZstdCompressionParameters.from_level(
        19,
        source_size=size,
        dict_size=len(base),
        window_log=max(params.window_log, window) if base else params.window_log,
        chain_log=min(params.chain_log, 19),
        hash_log=min(params.hash_log, 19),
        write_checksum=0,
        write_content_size=1,
        write_dict_id=0,
    )
    if not base:
        return zstd.ZstdCompressor(compression_params=params)
    return zstd.ZstdCompressor(dict_data=_dictionary(base), compression_params=params)


def encode(base: bytes, target: bytes) -> bytes:
    """A zstd frame of `target` with `base` as its dictionary: small when they share long runs."""
    return _compressor(len(target), base).compress(target)


def literal_cost(data: bytes) -> int:
    """About what `data` adds to the body's zstd stream on its own."""
    return len(_compressor(len(data)).compress(data))


def decode(base: bytes, frame: bytes, size: int) -> bytes:
    """The `size` bytes `frame` encodes against `base`; UpdateError if it does not decode to exactly that."""
    try:
        declared = zstd.frame_content_size(frame)
        if declared != size:
            raise UpdateError(f"a binary delta declares {declared} bytes where its entry has {size}")
        decompressor = zstd.ZstdDecompressor(dict_data=_dictionary(base), max_window_size=MAX_WINDOW)
        data = decompressor.decompress(frame, max_output_size=size)
    except zstd.ZstdError as e:
        raise UpdateError(f"a binary delta does not decode: {e}") from None
    if len(data) != size:
        raise UpdateError("a binary delta decodes to another size than its entry's")
    return data


def deflate_level(payload: bytes, compressed: bytes | memoryview) -> int | None:
    """The zlib level at which deflating `payload` gives exactly `compressed`, or None (other zlib
    settings or another zlib: the entry then ships as it is)."""
    if len(compressed) < 2:
        return None
    for level in _LEVELS_OF_FLEVEL[compressed[1] >> 6]:
        if zlib.compress(payload, level) == compressed:
            return level
    return None


def deflate(payload: bytes, level: int) -> bytes:
    return zlib.compress(payload, level)
