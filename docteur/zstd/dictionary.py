"""The dictionary section of a zstd image: the zstd dictionary its frames need, as one zstd frame.

A trained dictionary is mostly pieces of the files it was trained on, so it compresses about 5x
(measured: 2 MiB to 320 KiB on many small pages): stored raw it would cost more than it saves. The frame
carries its content size and checksum; the FRAMES section's header names the dictionary's id and length,
which the reader checks (frames.py).
"""

from __future__ import annotations

from docteur import zstd
from docteur.bytesource import ByteSource
from docteur.errors import CorruptImageError

MAX_DICTIONARY_BYTES = 1 << 23  # what a reader accepts; the writer's dictionaries are at most 2 MiB
# Level 19 stores a 2 MiB dictionary 10 % smaller than 12 (320 against 352 KB on the pages) but takes
# 1.1 s against 0.08 s: more than make may spend.
LEVEL = 12
# FastCOVER with fixed parameters, one deterministic pass with no search over them. Measured on the
# pages (bench/zstd_layout.py): k = 256 or 2048, d = 6, f = 18 or accel = 4 all gave larger frames, and
# tuning the entropy tables for level 12 rather than zstd's default took 4x as long for frames 1 % smaller.
_K, _D, _F, _ACCEL = 1024, 8, 20, 1


def train(samples: list[bytes], size: int) -> bytes | None:
    """A dictionary of at most `size` bytes, or None when zstd cannot train one from these samples
    (too few, too small)."""
    try:
        trained = zstd.train_dictionary(size, samples, k=_K, d=_D, f=_F, accel=_ACCEL)
    except zstd.ZstdError:
        return None
    return trained.as_bytes()


def encode(dictionary: bytes) -> bytes:
    """The section's bytes for `dictionary`."""
    compressor = zstd.ZstdCompressor(level=LEVEL, write_content_size=True, write_checksum=True)
    return compressor.compress(dictionary)


def decode(source: ByteSource, offset: int, length: int) -> bytes:
    """The dictionary stored in the section at [offset, offset + length) of `source`."""
    if length > MAX_DICTIONARY_BYTES + (MAX_DICTIONARY_BYTES >> 7) + 64:
        raise CorruptImageError("dictionary: the section is larger than any dictionary a reader accepts")
    raw = source.read(offset, length)
    if len(raw) != length:
        raise CorruptImageError("dictionary: section is truncated")
    try:
        declared = zstd.frame_content_size(raw)
    except zstd.ZstdError as e:
        raise CorruptImageError(f"dictionary: the section is not a zstd frame: {e}") from None
    if not 0 < declared <= MAX_DICTIONARY_BYTES:
        raise CorruptImageError("dictionary: the section declares no size or an oversized dictionary")
    decompressor = zstd.ZstdDecompressor(max_window_size=MAX_DICTIONARY_BYTES)
    return checked_frame(decompressor, raw, declared, 0, "dictionary: the section")


def checked_frame(
    decompressor: zstd.ZstdDecompressor, raw: bytes | memoryview, size: int, dict_id: int, what: str
) -> bytes:
    """The content of the zstd frame `raw`, which must be exactly one frame with a checksum, declaring
    `size` bytes and dictionary `dict_id` (0: none). `what` names it in errors, e.g. "frames: frame 3"."""
    try:
        params = zstd.get_frame_parameters(raw)
    except zstd.ZstdError as e:
        raise CorruptImageError(f"{what} is not a zstd frame: {e}") from None
    # zstandard allocates what a frame declares, whatever max_output_size says: check it first (bombs).
    if params.content_size != size:
        raise CorruptImageError(f"{what} declares {params.content_size} bytes, {size} expected")
    if not params.has_checksum:
        raise CorruptImageError(f"{what} has no checksum")
    if params.dict_id != dict_id:
        raise CorruptImageError(f"{what} was compressed with dictionary {params.dict_id}, not {dict_id}")
    try:
        data = decompressor.decompress(raw, max_output_size=size, allow_extra_data=False)
    except zstd.ZstdError as e:
        raise CorruptImageError(f"{what} does not decompress: {e}") from None
    if len(data) != size:
        raise CorruptImageError(f"{what} decompresses to {len(data)} bytes, {size} declared")
    return data
