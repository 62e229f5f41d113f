"""Seeded mutations aimed at the fields of the extension's sections, and the one way such a change can
leave a valid image.

Each family picks a field of one section of the honest image (the frames section's header and table, a
zstd frame's header and checksum, the dictionary's frame, the blobs table, the refs table), changes it
(a bit flipped, zeroed, all ones, one more or one less, another field's value) and, most of the time,
re-seals the section (fresh section and table checksums), so that only the reader's own checks of the
field are left to catch it.

zstd lets a few bits of a frame change without changing what it decodes to (the frame header's unused
bit, a larger window than the frame needs): nothing checks those, nor needs to. `same_contents` says
whether an image differs from the honest one only in such bytes of its frames or dictionary sections:
such an image is valid, and docteur-verify may accept it.
"""

from __future__ import annotations

import hashlib
import random
import struct
from collections.abc import Callable, Iterator

import zstandard

from docteur.bytesource.memory import InMemory
from docteur.sections import BLOBS, DICTIONARY, FRAMES, REFS, blobs, refs
from docteur.sections.table import Section, SectionTable, encode_table
from docteur.zstd import frames

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .mutations import Layout

Field = tuple[str, int, int]  # (what, absolute start, end)
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
FRAME_HEADER_MAX = 18  # magic, descriptor, window, dictionary id, content size: at most this many bytes
SEAL_RATE = 0.8
FRAMES_HEADER = (  # (field, offset, width), as docteur.zstd.frames.HEAD lays them out
    ("magic", 0, 4),
    ("version", 4, 2),
    ("flags", 6, 2),
    ("count", 8, 4),
    ("dictionary id", 12, 4),
    ("dictionary length", 16, 4),
    ("zero", 20, 4),
)


def reseal_section(image: bytearray, table: SectionTable, section: Section) -> None:
    """Give `section` the checksum of its bytes as they now are, and the table its own again."""
    sealed = [
        s._replace(checksum=hashlib.sha256(image[s.offset : s.end]).digest()) if s is section else s
        for s in table.sections
    ]
    image[table.offset : table.offset + table.length] = encode_table(table.block_size, sealed)


def sealed_table(image: bytes | bytearray, table: SectionTable) -> bytes:
    """The table `table` re-sealed over `image`: each section's checksum that of its bytes there. Built
    from the honest table, so that comparing an image's table with it does not rely on docteur's parser."""
    sealed = [s._replace(checksum=hashlib.sha256(image[s.offset : s.end]).digest()) for s in table.sections]
    return encode_table(table.block_size, sealed)


def _u(width: int, start: int, what: str) -> Field:
    return what, start, start + width


def _frames_fields(image: bytes, s: Section) -> Iterator[Field]:
    at = s.offset
    for what, offset, width in FRAMES_HEADER:
        yield _u(width, at + offset, f"frames header {what}")
    count = struct.unpack_from("<I", image, at + 8)[0]
    table = at + frames.HEAD.size
    for i in range(count):
        yield _u(8, table + 8 * i, f"frames table offset #{i}")
        yield _u(4, table + 8 * count + 4 * i, f"frames table compressed length #{i}")
        yield _u(4, table + 12 * count + 4 * i, f"frames table content length #{i}")


def _frame_spans(image: bytes, s: Section) -> Iterator[tuple[int, int, int]]:
    """(i, absolute start, end) of each zstd frame of a frames section."""
    reader = frames.FramesReader(InMemory(image), s.offset, s.length)
    for i in range(reader.count):
        offset, compressed, _ = reader.info(i)
        yield i, s.offset + offset, s.offset + offset + compressed


def _zstd_frame_fields(start: int, end: int, what: str) -> Iterator[Field]:
    """The header bytes of one zstd frame, one by one, and its checksum."""
    for pos in range(start + 4, min(start + FRAME_HEADER_MAX, end - 4)):
        yield _u(1, pos, f"{what} header byte {pos - start}")
    yield _u(4, start, f"{what} magic")
    yield _u(4, end - 4, f"{what} checksum")


def _blobs_fields(image: bytes, s: Section) -> Iterator[Field]:
    yield _u(4, s.offset, "blobs magic")
    yield _u(2, s.offset + 4, "blobs version")
    yield _u(2, s.offset + 6, "blobs zero")
    yield _u(4, s.offset + 8, "blobs count")
    count = struct.unpack_from("<I", image, s.offset + 8)[0]
    for i in range(count):
        at = s.offset + blobs.HEAD.size + blobs.ENTRY.size * i
        yield _u(20, at, f"blobs id #{i}")
        yield _u(4, at + 20, f"blobs frame #{i}")
        yield _u(4, at + 24, f"blobs offset #{i}")
        yield _u(8, at + 28, f"blobs size #{i}")


def refs_fields(image: bytes, s: Section) -> Iterator[Field]:
    yield _u(4, s.offset, "refs magic")
    yield _u(2, s.offset + 4, "refs version")
    yield _u(2, s.offset + 6, "refs zero")
    yield _u(4, s.offset + 8, "refs count")
    at = s.offset + refs.HEAD.size
    for i, (name, _) in enumerate(refs.decode(image[s.offset : s.end])):
        yield _u(2, at, f"refs name length #{i}")
        yield _u(len(name), at + 2, f"refs name #{i}")
        yield _u(20, at + 2 + len(name), f"refs commit #{i}")
        at += 2 + len(name) + 20


def _fields(image: bytes, layout: Layout, kind: int) -> list[Field]:
    table = layout.table
    s = table.find(kind) if table is not None else None
    if s is None:
        return []
    if kind == FRAMES:
        return list(_frames_fields(image, s))
    if kind == DICTIONARY:
        return list(_zstd_frame_fields(s.offset, s.end, "dictionary frame"))
    if kind == BLOBS:
        return list(_blobs_fields(image, s))
    return list(refs_fields(image, s))


def _changed(value: bytes, others: list[bytes], rng: random.Random) -> tuple[str, bytes]:
    width = len(value)
    how = rng.choice(["flip", "zero", "ones", "plus", "minus", "other", "random"])
    number = int.from_bytes(value, "little")
    if how == "flip":
        bit = rng.randrange(8 * width)
        return f"flip bit {bit}", (number ^ (1 << bit)).to_bytes(width, "little")
    if how == "zero":
        return how, bytes(width)
    if how == "ones":
        return how, b"\xff" * width
    if how in ("plus", "minus"):
        return how, ((number + (1 if how == "plus" else -1)) % (1 << 8 * width)).to_bytes(width, "little")
    if how == "other" and others:
        return how, rng.choice(others)
    return "random", rng.randbytes(width)


def _field_family(kind: int, name: str) -> Callable[[bytearray, Layout, random.Random], str]:
    def family(image: bytearray, layout: Layout, rng: random.Random) -> str:
        fields = _fields(bytes(image), layout, kind)
        what, start, end = rng.choice(fields)
        alike = [bytes(image[a:b]) for _, a, b in fields if b - a == end - start and a != start]
        how, value = _changed(bytes(image[start:end]), alike, rng)
        image[start:end] = value
        sealed = rng.random() < SEAL_RATE
        if sealed:
            assert layout.table is not None
            section = layout.table.find(kind)
            assert section is not None
            reseal_section(image, layout.table, section)
        return f"{what} at {start}: {how}{'' if sealed else ' unsealed'}"

    family.__name__ = name
    return family


def _frame_header_family(image: bytearray, layout: Layout, rng: random.Random) -> str:
    """A byte of one frame's zstd header, or its checksum (the frames section's table left alone)."""
    assert layout.table is not None
    section = layout.table.find(FRAMES)
    assert section is not None
    i, start, end = rng.choice(list(_frame_spans(bytes(image), section)))
    what, a, b = rng.choice(list(_zstd_frame_fields(start, end, f"frame {i}")))
    how, value = _changed(bytes(image[a:b]), [], rng)
    image[a:b] = value
    sealed = rng.random() < SEAL_RATE
    if sealed:
        reseal_section(image, layout.table, section)
    return f"{what} at {a}: {how}{'' if sealed else ' unsealed'}"


frames_table = _field_family(FRAMES, "frames_table")
dictionary_frame = _field_family(DICTIONARY, "dictionary_frame")
blobs_table = _field_family(BLOBS, "blobs_table")
refs_table = _field_family(REFS, "refs_table")
frame_header = _frame_header_family
frame_header.__name__ = "frame_header"

# Each family, and the section kind the image must have for it.
FAMILIES: dict[str, tuple[Callable[[bytearray, Layout, random.Random], str], int]] = {
    "frames_table": (frames_table, FRAMES),
    "frame_header": (frame_header, FRAMES),
    "dictionary_frame": (dictionary_frame, DICTIONARY),
    "blobs_table": (blobs_table, BLOBS),
    "refs_table": (refs_table, REFS),
}


def same_contents(image: bytes, original: bytes, layout: Layout) -> bool:
    """Whether `image` differs from `original` only inside its frames and dictionary sections (and in the
    table's checksums, re-sealed: sealed_table), in bytes that leave every zstd frame there a well-formed
    frame that decodes, with its checksum, to the content the original's frame holds."""
    table = layout.table
    if table is None or len(image) != len(original) or image == original:
        return False
    framed = [s for s in table.sections if s.kind in (FRAMES, DICTIONARY)]
    allowed = [(table.offset, table.offset + table.length), *((s.offset, s.end) for s in framed)]
    at = 0
    for start, end in sorted(allowed):
        if image[at:start] != original[at:start]:
            return False
        at = end
    if image[at:] != original[at:]:
        return False
    if image[table.offset : table.offset + table.length] != sealed_table(image, table):
        return False
    dictionary_data = None
    for s in framed:
        if s.kind == DICTIONARY:
            dictionary_data = _decoded(image[s.offset : s.end], original[s.offset : s.end], None)
            if dictionary_data is None:
                return False
    frames_section = table.find(FRAMES)
    if frames_section is None:
        return True
    at = frames_section.offset
    table_end = at + frames.HEAD.size + frames.ENTRY_BYTES * struct.unpack_from("<I", original, at + 8)[0]
    if image[at:table_end] != original[at:table_end]:
        return False  # the header and table say what every frame must be: each of their bytes counts
    loaded = zstandard.ZstdCompressionDict(dictionary_data) if dictionary_data is not None else None
    for _, start, end in _frame_spans(original, frames_section):
        raw, honest = image[start:end], original[start:end]
        if raw != honest and _decoded(raw, honest, loaded) is None:
            return False
    return True


def _decoded(raw: bytes, honest: bytes, dictionary: zstandard.ZstdCompressionDict | None) -> bytes | None:
    """The content of the zstd frame `raw` when it is one frame that declares the honest frame's size,
    dictionary and checksum and decodes to the honest frame's content; else None."""
    kwargs = {"dict_data": dictionary} if dictionary is not None else {}
    want = zstandard.ZstdDecompressor(**kwargs).decompress(honest)
    try:
        params, honest_params = zstandard.get_frame_parameters(raw), zstandard.get_frame_parameters(honest)
        # Compared before decompressing: zstandard allocates what a frame declares.
        alike = (params.content_size, params.dict_id, params.has_checksum) == (
            honest_params.content_size,
            honest_params.dict_id,
            honest_params.has_checksum,
        )
        if not alike:
            return None
        got = zstandard.ZstdDecompressor(**kwargs).decompress(
            raw, max_output_size=len(want), allow_extra_data=False
        )
    except zstandard.ZstdError:
        return None
    return got if got == want else None
