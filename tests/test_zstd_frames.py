"""The FRAMES section of zstd images (docteur.zstd.frames): round trips, determinism, reads that
decompress only the frames they need, the cache's bound, and hand-built hostile sections."""

from __future__ import annotations

import hashlib
import random
import struct
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from docteur import zstd
from docteur.bytesource import ByteSource
from docteur.bytesource.memory import InMemory
from docteur.errors import CorruptImageError
from docteur.zstd import dictionary, frames
from docteur.zstd.frames import FramesReader

SMALL = 4096  # frame and chunk sizes small enough that a few KiB of test data make many frames
CHUNK = 8192


def blob(content: bytes) -> tuple[bytes, bytes]:
    return hashlib.sha1(content).digest(), content


def prose(rng: random.Random, n: int) -> bytes:
    words = [b"lorem", b"ipsum", b"dolor", b"sit", b"amet", b"docteur", b"frame", b"zstd", b"tree", b"blob"]
    return b" ".join(rng.choice(words) for _ in range(n)) + b"\n"


class Recording(ByteSource):
    """Bytes in memory that remember every read and prefetch hint: which frames a reader touched."""

    def __init__(self, data: bytes) -> None:
        self._data = InMemory(data)
        self.size = len(data)
        self.name = "<recording>"
        self.reads: list[tuple[int, int]] = []
        self.hints: list[tuple[int, int]] = []

    def read(self, offset: int, length: int) -> memoryview:
        self.reads.append((offset, length))
        return self._data.read(offset, length)

    def prefetch(self, ranges):  # type: ignore[no-untyped-def]
        self.hints += list(ranges)


class Image:
    """A FRAMES section, and its dictionary section after it, in one source."""

    def __init__(self, written: frames.Written, **kw: object) -> None:
        self.written = written
        data = written.section + (written.dictionary or b"")
        self.source = Recording(data)
        at = (len(written.section), len(written.dictionary)) if written.dictionary else None
        self.reader = FramesReader(self.source, 0, len(written.section), dictionary=at, **kw)  # type: ignore[arg-type]

    def frames_read(self) -> list[int]:
        """The frames whose bytes were read, in order (table reads left out)."""
        at = {self.reader.offsets[i]: i for i in range(self.reader.count)}
        return [at[offset] for offset, _ in self.source.reads if offset in at]


def small_files(n: int, seed: int = 1) -> list[tuple[bytes, bytes]]:
    rng = random.Random(seed)
    return [blob(b"file %d: " % i + prose(rng, rng.randint(1, 60))) for i in range(n)]


def test_round_trip_of_every_kind_of_file() -> None:
    rng = random.Random(2)
    huge = rng.randbytes(CHUNK * 9 + 123)  # binary, spans ten chunk frames
    files = [
        blob(b""),
        *small_files(300),
        blob(huge),
        blob(bytes(range(256)) * 3),
        blob(b"\0" * 5000),  # over a small frame: a frame of its own
        blob(b"x"),
    ]
    written = frames.write([*files, files[5], files[0]], frame_bytes=SMALL, chunk_bytes=CHUNK)
    assert len(written.locations) == len(files)  # listed twice, stored once
    assert written.locations[files[0][0]] == frames.EMPTY
    image = Image(written)
    reader = image.reader
    assert reader.count > 10
    for oid, content in files:
        assert reader.read(*written.locations[oid]) == content
    frame, offset, size = written.locations[blob(huge)[0]]
    assert (offset, size) == (0, len(huge))
    assert [reader.info(frame + i).size for i in range(10)] == [CHUNK] * 9 + [123]
    # Small files never straddle frames; frames tile the section.
    for oid, _ in files:
        f, o, s = written.locations[oid]
        if 0 < s <= SMALL:
            assert o + s <= reader.info(f).size
    assert reader.info(0).offset == frames.HEAD.size + frames.ENTRY_BYTES * reader.count
    last = reader.info(reader.count - 1)
    assert last.offset + last.compressed == len(written.section)


def test_no_files_and_only_empty_files() -> None:
    for files in ([], [blob(b"")]):
        written = frames.write(files)
        reader = Image(written).reader
        assert reader.count == 0 and reader.content_size == 0
        assert [reader.read(*loc) for loc in written.locations.values()] == [b""] * len(files)


def test_same_inputs_same_bytes_whatever_the_threads() -> None:
    files = [*small_files(2000), blob(random.Random(3).randbytes(CHUNK * 5))]
    one = frames.write(files, frame_bytes=SMALL, chunk_bytes=CHUNK, threads=1, dictionary_bytes=16 << 10)
    many = frames.write(files, frame_bytes=SMALL, chunk_bytes=CHUNK, threads=4, dictionary_bytes=16 << 10)
    assert one.dictionary is not None
    assert one == many
    assert frames.write(files, threads=1, dictionary_bytes=0) == frames.write(
        files, threads=3, dictionary_bytes=0
    )


def pages(n: int) -> list[tuple[bytes, bytes]]:
    """Web pages: one template, sentences drawn from a few hundred (what a dictionary is for)."""
    rng = random.Random(4)
    sentences = [prose(rng, rng.randint(8, 20)) for _ in range(400)]
    head = b'<html><head><meta charset="utf-8"><link rel="stylesheet" href="../style.css"><title>'
    return [
        blob(
            head
            + b"page %d</title></head><body><nav>home / section %d</nav>\n" % (i, i % 7)
            + b"<p>"
            + b"".join(rng.choices(sentences, k=rng.randint(2, 6)))
            + b"</p></body></html>\n"
        )
        for i in range(n)
    ]


def test_a_dictionary_is_used_when_it_pays_and_needed_to_read() -> None:
    files = pages(4000)  # ~2 MB of similar small files
    auto = frames.write(files)
    bare = frames.write(files, dictionary_bytes=0)
    assert auto.dictionary is not None and bare.dictionary is None
    assert len(auto.section) + len(auto.dictionary) < len(bare.section)
    image = Image(auto)
    assert image.reader.needs_dictionary
    assert all(image.reader.read(*auto.locations[oid]) == content for oid, content in files)
    # A handful of small files: training is not worth it.
    assert frames.write(small_files(50)).dictionary is None


def test_read_range_decompresses_only_the_frames_it_covers() -> None:
    content = random.Random(5).randbytes(CHUNK * 6)
    written = frames.write([blob(content)], frame_bytes=SMALL, chunk_bytes=CHUNK)
    location = written.locations[blob(content)[0]]
    for start, length, expect in [
        (0, 1, [0]),
        (CHUNK - 2, 4, [0, 1]),  # across a boundary
        (CHUNK, CHUNK, [1]),  # exactly one frame
        (CHUNK - 1, CHUNK + 2, [0, 1, 2]),
        (CHUNK * 6 - 1, 100, [5]),  # clipped at the file's end
        (CHUNK * 2, 0, []),
        (CHUNK * 7, 10, []),  # past the end
    ]:
        image = Image(written, cache_bytes=0)
        data = image.reader.read_range(*location, start, length)
        assert data == content[start : start + length]
        assert image.frames_read() == expect, (start, length)
        if len(expect) > 1:  # a read over several frames hints them to the source first
            assert image.source.hints == [
                (image.reader.offsets[i], image.reader.compressed[i]) for i in expect
            ]


def test_one_small_file_decompresses_one_frame() -> None:
    files = small_files(500)
    written = frames.write(files, frame_bytes=SMALL)
    image = Image(written)
    oid, content = files[250]
    assert image.reader.read(*written.locations[oid]) == content
    assert image.frames_read() == [written.locations[oid][0]]
    image.reader.read(*written.locations[oid])  # cached now
    assert image.frames_read() == [written.locations[oid][0]]


def test_read_many_decompresses_each_frame_once_in_image_order() -> None:
    files = [*small_files(800), blob(random.Random(6).randbytes(CHUNK * 3)), *small_files(200, seed=7)]
    written = frames.write(files, frame_bytes=SMALL, chunk_bytes=CHUNK)
    image = Image(written)
    locations = [written.locations[oid] for oid, _ in files]
    shuffled = list(range(len(files)))
    random.Random(8).shuffle(shuffled)
    asked = [locations[i] for i in shuffled]
    got = list(image.reader.read_many(asked))
    assert sorted(i for i, _ in got) == list(range(len(asked)))
    assert all(data == files[shuffled[i]][1] for i, data in got)
    positions = [image.reader.starts[asked[i][0]] + asked[i][1] for i, _ in got]
    assert positions == sorted(positions)
    assert image.frames_read() == list(range(image.reader.count))  # each frame once, in order
    assert image.source.hints == [
        (image.reader.offsets[i], image.reader.compressed[i]) for i in range(image.reader.count)
    ]
    assert image.reader.cache.size == 0  # a read of everything does not flush the cache


def test_the_cache_stays_within_its_bound() -> None:
    files = small_files(3000)
    written = frames.write(files, frame_bytes=SMALL)
    image = Image(written, cache_bytes=SMALL * 4)
    for oid, content in files:
        assert image.reader.read(*written.locations[oid]) == content
        assert image.reader.cache.size <= SMALL * 4
    read_once = len(image.frames_read())
    assert read_once == image.reader.count  # in image order, each frame read once
    oid, content = files[0]
    image.reader.read(*written.locations[oid])  # evicted long ago: decompressed again
    assert len(image.frames_read()) == read_once + 1
    # A frame larger than a quarter of the bound takes the one large slot: a large file read in pieces
    # decompresses each chunk once.
    big = random.Random(9).randbytes(CHUNK * 4)
    written = frames.write([blob(big)], frame_bytes=SMALL, chunk_bytes=CHUNK)
    image = Image(written, cache_bytes=CHUNK)
    location = written.locations[blob(big)[0]]
    pieces = [image.reader.read_range(*location, at, 1000) for at in range(0, len(big), 1000)]
    assert b"".join(pieces) == big
    assert image.frames_read() == [0, 1, 2, 3]
    assert image.reader.cache.size == 0


# -- hostile sections, built by hand ---------------------------------------------------------------------


def section(
    raw_frames: list[bytes],
    sizes: list[int],
    *,
    offsets: list[int] | None = None,
    flags: int = 0,
    dict_id: int = 0,
    dict_length: int = 0,
    count: int | None = None,
    head: tuple[bytes, int] = (frames.MAGIC, frames.VERSION),
    zero: int = 0,
) -> bytes:
    """A FRAMES section of these frames and a table of them; `count` overrides only the header's N."""
    n = len(raw_frames)
    data_at = frames.HEAD.size + frames.ENTRY_BYTES * n
    if offsets is None:
        offsets = [data_at + sum(len(f) for f in raw_frames[:i]) for i in range(n)]
    return b"".join(
        [
            frames.HEAD.pack(*head, flags, n if count is None else count, dict_id, dict_length, zero),
            struct.pack(f"<{n}Q", *offsets),
            struct.pack(f"<{n}I", *(len(f) for f in raw_frames)),
            struct.pack(f"<{n}I", *sizes),
            *raw_frames,
        ]
    )


def zframe(content: bytes, **kw: object) -> bytes:
    options = {"level": 3, "write_checksum": True, "write_content_size": True, **kw}
    return zstd.ZstdCompressor(**options).compress(content)  # type: ignore[arg-type]


def open_reader(
    data: bytes, dictionary_at: tuple[int, int] | None = None, source_data: bytes | None = None
) -> FramesReader:
    return FramesReader(
        InMemory(data if source_data is None else source_data), 0, len(data), dictionary=dictionary_at
    )


def refused(action, start: str = "frames: ") -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(CorruptImageError) as caught:
        action()
    message = str(caught.value)
    assert message.startswith(start) and "\n" not in message
    return message


A, B = b"first frame " * 50, b"second frame " * 40
GOOD = [zframe(A), zframe(B)]


def test_an_honest_hand_built_section_reads() -> None:
    reader = open_reader(section(GOOD, [len(A), len(B)]))
    assert reader.read(0, 0, len(A) + len(B)) == A + B  # one file may span frames
    assert reader.read(1, 5, 10) == B[5:15]


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"DTZ", "truncated"),
        (section(GOOD, [len(A), len(B)], head=(b"DTZX", 1)), "not a frames section"),
        (section(GOOD, [len(A), len(B)], head=(frames.MAGIC, 2)), "not a frames section"),
        (section(GOOD, [len(A), len(B)], flags=6), "malformed header"),
        (section(GOOD, [len(A), len(B)], zero=1), "malformed header"),
        (section(GOOD, [len(A), len(B)], dict_id=5), "malformed header"),
        (section(GOOD, [len(A), len(B)], count=frames.MAX_FRAMES + 1), "malformed header"),
        (section(GOOD, [len(A), len(B)], count=1000), "table runs past"),
        # overlapping, gapped, out-of-range frames
        (section(GOOD, [len(A), len(B)], offsets=[56, 60]), "overlap"),
        (section(GOOD, [len(A), len(B)], offsets=[56, 56 + len(GOOD[0]) + 1]), "overlap"),
        (section(GOOD, [len(A), len(B)], offsets=[56, 1 << 40]), "overlap"),
        (section(GOOD, [len(A), len(B)])[:-1], "overlap"),
        (section(GOOD, [len(A), len(B)]) + b"\0", "overlap"),
        # frames declaring nothing, or more than any reader allows (bombs)
        (section(GOOD, [0, len(B)]), "declares no content"),
        (section(GOOD, [len(A), frames.MAX_FRAME_BYTES + 1]), "more than"),
    ],
)
def test_a_malformed_table_is_refused_at_open(data: bytes, why: str) -> None:
    assert why in refused(lambda: open_reader(data))


def test_the_table_read_past_the_first_read_and_a_truncated_source() -> None:
    many = [zframe(b"%d" % i) for i in range(5000)]  # a table longer than the first read
    data = section(many, [len(b"%d" % i) for i in range(5000)])
    reader = open_reader(data)
    assert reader.read(4999, 0, 4) == b"4999"
    refused(lambda: open_reader(data, source_data=data[:70000]))  # the source ends inside the table
    data = section(GOOD, [len(A), len(B)])
    reader = open_reader(data, source_data=data[:-10])  # the source ends inside the last frame
    assert reader.read(0, 0, 3) == A[:3]
    assert "truncated" in refused(lambda: reader.read(1, 0, 3))


def bad_frame(raw: bytes, size: int) -> FramesReader:
    """A section whose second frame is `raw`, the table saying it holds `size` bytes."""
    return open_reader(section([GOOD[0], raw], [len(A), size]))


def test_frames_that_lie_or_fail_are_refused() -> None:
    flipped = bytearray(GOOD[1])
    flipped[len(flipped) // 2] ^= 0x55
    bigger = zframe(B + B)
    cases = [
        (bad_frame(bytes(flipped), len(B)), ""),  # damaged data or checksum
        (bad_frame(GOOD[1][:-4] + b"\0\0\0\0", len(B)), ""),  # wrong checksum
        (bad_frame(bigger, len(B)), "declares"),  # holds more than the table says
        (bad_frame(GOOD[1], len(B) - 1), "declares"),
        (bad_frame(zframe(B, write_checksum=False), len(B)), "no checksum"),
        (bad_frame(zframe(B, write_content_size=False), len(B)), "declares"),
        (bad_frame(GOOD[1] + b"junk", len(B)), "does not decompress"),  # more than one frame's bytes
        (bad_frame(b"\0" * 40, 40), "not a zstd frame"),
        (bad_frame(GOOD[1] * 2, len(B)), "does not decompress"),
    ]
    for reader, why in cases:
        assert reader.read(0, 0, 5) == A[:5]  # the honest frame still reads
        assert why in refused(lambda r=reader: r.read(1, 0, 5))
        assert why in refused(lambda r=reader: list(r.read_many([(0, 0, 5), (1, 0, 5)])))


def test_a_frame_that_holds_more_than_it_declares() -> None:
    content = b"%d lines\n" * 20 % tuple(range(20))
    assert len(content) < 256
    raw = bytearray(zframe(content))
    # A single-segment frame with a one-byte content size: make it declare less than it holds.
    descriptor = raw[4]
    assert descriptor >> 6 == 0 and descriptor & 0x20
    raw[5] = len(content) - 7
    assert "does not decompress" in refused(lambda: bad_frame(bytes(raw), len(content) - 7).read(1, 0, 5))


def test_a_zstd_bomb_is_refused_before_it_is_inflated() -> None:
    bomb = zframe(bytes(64 << 20), level=19)  # 64 MiB of zeros in a few KiB
    assert len(bomb) < 8192
    refused(lambda: bad_frame(bomb, 1000).read(1, 0, 5))  # the table says less than the frame declares
    tracemalloc.start()
    try:
        message = refused(lambda: bad_frame(bomb, frames.MAX_FRAME_BYTES).read(1, 0, 5))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "declares" in message
    assert peak < 1 << 20  # refused from the header alone, nothing inflated
    refused(lambda: bad_frame(bomb, frames.MAX_FRAME_BYTES + 1))


def test_locations_outside_the_frames_are_refused() -> None:
    reader = open_reader(section(GOOD, [len(A), len(B)]))
    for location, why in [
        ((2, 0, 1), "lacks"),
        ((-1, 0, 1), "lacks"),
        ((0, len(A), 1), "past the end of frame 0"),
        ((0, -1, 1), "past the end of frame 0"),
        ((1, 0, len(B) + 1), "runs past the last frame"),
        ((0, 10, len(A) + len(B)), "runs past the last frame"),
        ((0, 0, -5), "runs past"),
        ((1, 0, 0), "empty file"),
    ]:
        assert why in refused(lambda loc=location: reader.read(*loc))
        assert why in refused(lambda loc=location: reader.read_range(*loc, 0, 1))
        assert why in refused(lambda loc=location: list(reader.read_many([loc])))


def test_a_compressed_length_no_zstd_frame_could_have_is_refused() -> None:
    padded = GOOD[1] + bytes(4096)
    assert "bytes for" in refused(lambda: bad_frame(padded, len(B)).read(1, 0, 1))


def with_dictionary(files: list[tuple[bytes, bytes]]) -> frames.Written:
    written = frames.write(files, frame_bytes=SMALL, dictionary_bytes=16 << 10)
    assert written.dictionary is not None
    return written


def test_a_missing_or_wrong_dictionary_is_refused() -> None:
    files = small_files(2000)
    written = with_dictionary(files)
    other = with_dictionary(small_files(2000, seed=99))
    assert other.dictionary != written.dictionary
    oid, _ = files[10]
    location = written.locations[oid]
    n = len(written.section)

    def reader_with(dictionary_section: bytes | None) -> FramesReader:
        data = written.section + (dictionary_section or b"")
        at = (n, len(dictionary_section)) if dictionary_section is not None else None
        return open_reader(written.section, at, data)

    everything = [written.locations[oid] for oid, _ in files]
    assert "no dictionary section" in refused(lambda: reader_with(None).read(*location))
    assert "dictionary is number" in refused(lambda: reader_with(other.dictionary).read(*location))
    # The right id and length, other content: the frames' checksums catch it.
    raw = bytearray(dictionary.decode(InMemory(written.dictionary), 0, len(written.dictionary)))
    raw[1000:] = bytes(len(raw) - 1000)
    refused(lambda: list(reader_with(dictionary.encode(bytes(raw))).read_many(everything)))
    shorter = dictionary.encode(bytes(raw[:-1]))
    assert "holds" in refused(lambda: reader_with(shorter).read(*location))
    # A dictionary section that is no zstd frame, or declares more than a reader accepts.
    refused(lambda: reader_with(b"\0" * 64).read(*location), "dictionary: ")
    bomb = zframe(bytes(dictionary.MAX_DICTIONARY_BYTES + 1), level=19)
    refused(lambda: reader_with(bomb).read(*location), "dictionary: ")
    # Frames made with no dictionary, in a section that says they need one, and the reverse.
    plain = frames.write(files, frame_bytes=SMALL, dictionary_bytes=0)
    magic, version, _, count, _, _, zero = frames.HEAD.unpack_from(plain.section)
    _, _, flags, _, dict_id, dict_length, _ = frames.HEAD.unpack_from(written.section)
    claims = frames.HEAD.pack(magic, version, flags, count, dict_id, dict_length, zero)
    forged = claims + plain.section[frames.HEAD.size :]
    reader = open_reader(forged, (len(forged), len(written.dictionary)), forged + written.dictionary)
    assert "compressed with dictionary 0" in refused(lambda: reader.read(*plain.locations[oid]))
    count = frames.HEAD.unpack_from(written.section)[3]
    unflagged = frames.HEAD.pack(magic, version, 0, count, 0, 0, 0) + written.section[frames.HEAD.size :]
    assert "compressed with dictionary" in refused(lambda: open_reader(unflagged).read(*location))


def test_verify_style_checks_every_frame() -> None:
    written = frames.write(small_files(500), frame_bytes=SMALL)
    reader = Image(written).reader
    assert sum(len(reader.decompress(i)) for i in range(reader.count)) == reader.content_size
    assert reader.cache.size == 0
    refused(lambda: reader.info(reader.count))
    refused(lambda: reader.decompress(-1))


MUTATED = [*pages(300), blob(random.Random(10).randbytes(CHUNK * 2 + 5)), blob(b"")]
MUTATED_WRITTEN = frames.write(MUTATED, frame_bytes=SMALL, chunk_bytes=CHUNK, dictionary_bytes=8 << 10)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(min_value=0), st.integers(1, 255)), min_size=1, max_size=4))
def test_a_damaged_section_never_gives_wrong_bytes(flips: list[tuple[int, int]]) -> None:
    """Any bytes of the FRAMES or dictionary section flipped: every read gives the file or refuses."""
    written = MUTATED_WRITTEN
    assert written.dictionary is not None
    data = bytearray(written.section + written.dictionary)
    for at, mask in flips:
        data[at % len(data)] ^= mask
    n = len(written.section)
    locations = [written.locations[oid] for oid, _ in MUTATED]
    try:
        reader = open_reader(bytes(data[:n]), (n, len(written.dictionary)), bytes(data))
        for (_, content), location in zip(MUTATED, locations, strict=True):
            try:
                assert reader.read(*location) == content
            except CorruptImageError as e:
                assert str(e).startswith(("frames: ", "dictionary: "))
        for i, got in reader.read_many(locations):
            assert got == MUTATED[i][1]
    except CorruptImageError as e:
        assert str(e).startswith(("frames: ", "dictionary: "))


def test_an_oversized_dictionary_section_is_not_read() -> None:
    source = Recording(bytes(100))
    with pytest.raises(CorruptImageError, match=r"^dictionary: "):
        dictionary.decode(source, 0, 64 << 20)
    assert source.reads == []


def test_bad_writer_options() -> None:
    with pytest.raises(ValueError):
        frames.write([], frame_bytes=CHUNK, chunk_bytes=SMALL)
    with pytest.raises(ValueError):
        frames.write([], chunk_bytes=frames.MAX_FRAME_BYTES + 1)
