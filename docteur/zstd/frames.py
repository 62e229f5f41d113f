"""The FRAMES section of a zstd image: file contents in zstd frames, and the table that finds them.

    header  magic b"DTZF", version u16 (1), flags u16 (bit 0: the frames need the dictionary section),
            frames N u32, dictionary id u32, dictionary length u32, zero u32              (24 bytes)
    table   offset u64[N] (from the section's start), compressed length u32[N], content length u32[N]
    frames  N zstd frames back to back, the first at 24 + 16 N, the last ending at the section's end

Every integer is little-endian. Each frame declares its content size, carries zstd's checksum of its
content and, with a dictionary, that dictionary's id. The frames' contents, end to end, are one stream:
a file is `size` bytes of it starting at `offset` in frame `frame` (its location). Many small files share
a frame (in the order the writer was given them: a folder's files lie together); a file larger than a
small-file frame has frames of its own, cut every `chunk_bytes`, so reading part of it decompresses
only the frames that part covers. An empty file is (0, 0, 0).

The section is not trusted: the table must describe frames that tile the section exactly, each frame
must declare what the table says (at most MAX_FRAME_BYTES: no zstd bombs), decompress, and match its
checksum, and a location must lie inside the frames. Anything else is a CorruptImageError whose message
starts with "frames:"; memory stays bounded by the cache, one frame, and the bytes asked for.
"""

from __future__ import annotations

import struct
import sys
import threading
from array import array
from bisect import bisect_right
from collections import OrderedDict, namedtuple
from itertools import accumulate

from docteur import zstd
from docteur.bytesource import ByteSource
from docteur.errors import CorruptImageError
from docteur.zstd import dictionary

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Sequence

MAGIC = b"DTZF"
VERSION = 1
HEAD = struct.Struct("<4sHHIIII")
ENTRY_BYTES = 16  # u64 offset + u32 compressed + u32 content length
DICTIONARY = 1  # flag: the frames were compressed with the image's dictionary
MAX_FRAMES = 1 << 22
# No frame may declare more: the writer's largest are CHUNK_BYTES; this leaves room for other writers.
MAX_FRAME_BYTES = 1 << 24
# The table is read with the header in one read when it fits in this (4,094 frames: ~250 MiB of files).
_FIRST_READ = 64 << 10

# Chosen from measurements (python -m bench.zstd_layout, on the bench corpora and ../shared/corpora):
# - FRAME_BYTES, for small files: zstd searches a dictionary in place for inputs up to 32 KiB and copies
#   its tables into the context for each larger one, which made 64 KiB frames 1.8-2.6x slower to write
#   (pages: 1.6 s against 0.6 s) for frames 1-3 % smaller. Reading a small file from a cold 32 KiB frame
#   takes 14-38 us (median per corpus), well inside the 100 us goal (128 KiB frames: 47-131 us).
FRAME_BYTES = 32 << 10
# - CHUNK_BYTES, for large files: a read at an offset decompresses at most this much (~1.1 ms); on large
#   text 2 MiB frames are 10 % smaller than 1 MiB ones (4 MiB: 9 % smaller still, but 1.7 ms a read).
CHUNK_BYTES = 2 << 20
# - LEVEL: zstd's level 12 finds the long matches into a large dictionary that level 9 misses (pages:
#   frames 1.29 MB against 1.73 MB) at ~25 MB/s a core; 15 is 8 % smaller and 2.3x slower, 19 16 % / 19x.
LEVEL = 12
# - the dictionary: trained on the small files when they hold at least DICT_MIN_CONTENT, an eighth of
#   their size up to MAX_DICT_BYTES (pages: 2 MiB saves 3.7 MB of frames for 0.36 MB of dictionary,
#   1 MiB 3.1 MB for 0.23 MB; a quarter of their size made icons' and peps' images 0.4-0.7 % smaller,
#   the book's 1.6 % larger, and peps' 1.6x slower to write), from at most TRAIN_BYTES of them, and kept
#   only when a sample of the frames shows it saves more than it costs.
DICT_MIN_CONTENT = 256 << 10
DICT_RATIO = 8
MAX_DICT_BYTES = 2 << 20
MIN_DICT_BYTES = 16 << 10
TRAIN_BYTES = 32 << 20
_SAMPLE_FRAMES = 32

DEFAULT_CACHE_BYTES = 4 << 20
_LITTLE = sys.byteorder == "little"

Location = tuple[int, int, int]  # (first frame, offset in its content, size)
EMPTY: Location = (0, 0, 0)


class FrameInfo(namedtuple("FrameInfo", "offset compressed size")):
    __slots__ = ()
    offset: int  # from the section's start
    compressed: int
    size: int  # content length


class Written(namedtuple("Written", "section dictionary locations")):
    __slots__ = ()
    section: bytes  # the FRAMES section
    dictionary: bytes | None  # the dictionary section (dictionary.encode), or None: frames need none
    locations: dict[bytes, Location]  # blob id -> where its content lies


def _corrupt(message: str) -> CorruptImageError:
    return CorruptImageError(f"frames: {message}")


def _column(code: str, data: bytes | memoryview) -> array[int]:
    column = array(code)
    column.frombytes(data)
    if not _LITTLE:
        column.byteswap()
    return column


# -- reading ---------------------------------------------------------------------------------------------


class FrameCache:
    """Decompressed frames, least recently used first out, bounded by their total size; a frame larger
    than a quarter of the bound takes the single large slot instead (a large file read in pieces keeps
    its current chunk). Memory: `max_bytes` plus one frame."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self._frames: OrderedDict[int, bytes] = OrderedDict()
        self._large: tuple[int, bytes] | None = None
        self._lock = threading.Lock()  # the 9P server reads from several threads

    def get(self, frame: int) -> bytes | None:
        with self._lock:
            data = self._frames.get(frame)
            if data is not None:
                self._frames.move_to_end(frame)
                return data
            large = self._large
        return large[1] if large is not None and large[0] == frame else None

    def put(self, frame: int, data: bytes) -> None:
        if len(data) > self.max_bytes // 4:
            self._large = (frame, data)
            return
        with self._lock:
            if frame in self._frames:
                return
            self._frames[frame] = data
            self.size += len(data)
            while self.size > self.max_bytes:
                self.size -= len(self._frames.popitem(last=False)[1])


class FramesReader:
    """The FRAMES section at [offset, offset + length) of `source`; `dictionary` is where the image's
    dictionary section lies (offset, length) when it has one, loaded when a frame first needs it."""

    def __init__(
        self,
        source: ByteSource,
        offset: int,
        length: int,
        *,
        dictionary: tuple[int, int] | None = None,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
    ) -> None:
        self.source = source
        self.at = offset
        self.length = length
        first = bytes(source.read(offset, min(length, _FIRST_READ)))
        if len(first) < HEAD.size:
            raise _corrupt("section is truncated")
        magic, version, flags, count, dict_id, dict_length, zero = HEAD.unpack_from(first)
        if magic != MAGIC or version != VERSION:
            raise _corrupt("not a frames section this docteur reads")
        if flags & ~DICTIONARY or zero or count > MAX_FRAMES:
            raise _corrupt("malformed header")
        if not flags & DICTIONARY and (dict_id or dict_length):
            raise _corrupt("malformed header")
        data_at = HEAD.size + ENTRY_BYTES * count
        if data_at > length:
            raise _corrupt("the table runs past the section's end")
        table = first[HEAD.size : data_at]
        if len(table) < data_at - HEAD.size:
            table += bytes(source.read(offset + len(first), data_at - len(first)))
            if len(table) != data_at - HEAD.size:
                raise _corrupt("section is truncated")
        self.offsets = _column("Q", table[: 8 * count])
        self.compressed = _column("I", table[8 * count : 12 * count])
        self.sizes = _column("I", table[12 * count :])
        # The frames must tile the section: each starts where the one before ends.
        ends = array("Q", accumulate(self.compressed, initial=data_at))
        if ends[-1] != length or ends[:-1] != self.offsets:
            raise _corrupt("the table's frames overlap, leave gaps or run past the section's end")
        if count and (min(self.sizes) == 0 or max(self.sizes) > MAX_FRAME_BYTES):
            raise _corrupt(f"a frame declares no content or more than {MAX_FRAME_BYTES} bytes")
        self.count = count
        # Where each frame's content starts in the stream of all frames' contents (and, last, its end).
        self.starts = array("Q", accumulate(self.sizes, initial=0))
        self.content_size = self.starts[-1]
        self.needs_dictionary = bool(flags & DICTIONARY)
        self.dict_id = dict_id
        self.dict_length = dict_length
        self._dictionary_at = dictionary
        self._dictionary: object = None  # a zstd.ZstdCompressionDict once loaded
        self._idle: list[zstd.ZstdDecompressor] = []
        self.cache = FrameCache(cache_bytes)

    def info(self, frame: int) -> FrameInfo:
        if not 0 <= frame < self.count:
            raise _corrupt(f"frame {frame} is not in the table ({self.count} frames)")
        return FrameInfo(self.offsets[frame], self.compressed[frame], self.sizes[frame])

    # -- frames

    def _decompressor(self) -> zstd.ZstdDecompressor:
        if self._idle:
            return self._idle.pop()
        if not self.needs_dictionary:
            return zstd.ZstdDecompressor(max_window_size=MAX_FRAME_BYTES)
        if self._dictionary is None:
            self._dictionary = self._load_dictionary()
        return zstd.ZstdDecompressor(dict_data=self._dictionary, max_window_size=MAX_FRAME_BYTES)

    def _load_dictionary(self) -> object:
        if self._dictionary_at is None:
            raise _corrupt("the frames need a dictionary and the image has no dictionary section")
        data = dictionary.decode(self.source, *self._dictionary_at)
        loaded = zstd.ZstdCompressionDict(data, dict_type=zstd.DICT_TYPE_FULLDICT)
        if loaded.dict_id() != self.dict_id:
            raise _corrupt(f"the dictionary is number {loaded.dict_id()}, the frames need {self.dict_id}")
        if len(data) != self.dict_length:
            raise _corrupt(f"the dictionary holds {len(data)} bytes, the frames need {self.dict_length}")
        return loaded

    def decompress(self, frame: int) -> bytes:
        """The content of `frame`, decompressed and checked now (not cached: verify reads each once)."""
        at, compressed, size = self.info(frame)
        # Honest frames are at most a few bytes per 128 KiB block larger than their content.
        if compressed > size + (size >> 7) + 64:
            raise _corrupt(f"frame {frame} is {compressed} bytes for {size} of content")
        raw = self.source.read(self.at + at, compressed)
        if len(raw) != compressed:
            raise _corrupt("section is truncated")
        d = self._decompressor()
        try:
            return dictionary.checked_frame(
                d, raw, size, self.dict_id if self.needs_dictionary else 0, f"frames: frame {frame}"
            )
        finally:
            self._idle.append(d)

    def frame(self, frame: int) -> bytes:
        """The content of `frame`, through the cache."""
        data = self.cache.get(frame)
        if data is None:
            data = self.decompress(frame)
            self.cache.put(frame, data)
        return data

    # -- files

    def _span(self, location: Location) -> tuple[int, int]:
        """[start, end) of a location in the stream of contents."""
        frame, offset, size = location
        if size == 0:
            if frame or offset:
                raise _corrupt(f"an empty file's location is ({frame}, {offset}), not (0, 0)")
            return 0, 0
        if not 0 <= frame < self.count:
            raise _corrupt(f"a file starts in frame {frame}, which the table lacks ({self.count} frames)")
        if not 0 <= offset < self.sizes[frame]:
            raise _corrupt(f"a file starts at {offset}, past the end of frame {frame}")
        start = self.starts[frame] + offset
        if size < 0 or start + size > self.content_size:
            raise _corrupt(f"a file of {size} bytes from frame {frame} runs past the last frame")
        return start, start + size

    def _slice(self, start: int, end: int) -> bytes:
        """Bytes [start, end) of the stream, from the frames that cover them (through the cache)."""
        if start >= end:
            return b""
        first = bisect_right(self.starts, start) - 1
        last = bisect_right(self.starts, end - 1) - 1
        if first == last:
            base = self.starts[first]
            data = self.frame(first)
            return data if end - start == len(data) else data[start - base : end - base]
        self.source.prefetch(self._ranges(range(first, last + 1)))
        pieces = []
        for i in range(first, last + 1):
            base = self.starts[i]
            data = self.frame(i)
            pieces.append(data[max(start - base, 0) : end - base])
        return b"".join(pieces)

    def _ranges(self, frames: Iterable[int]) -> Iterator[tuple[int, int]]:
        at, offsets, compressed = self.at, self.offsets, self.compressed
        for i in frames:
            yield at + offsets[i], compressed[i]

    def read(self, frame: int, offset: int, size: int) -> bytes:
        """The content of the file at this location: at most the frames it spans are decompressed."""
        if 0 <= frame < self.count and offset >= 0 and size > 0 and offset + size <= self.sizes[frame]:
            data = self.frame(frame)  # most files: inside one frame
            return data if size == len(data) else data[offset : offset + size]
        return self._slice(*self._span((frame, offset, size)))

    def read_range(self, frame: int, offset: int, size: int, start: int, length: int) -> bytes:
        """Bytes [start, start + length) of the file at this location (fewer at its end): only the
        frames that cover them are decompressed."""
        first, end = self._span((frame, offset, size))
        start = min(max(start, 0), size)
        return self._slice(first + start, min(first + start + max(length, 0), end))

    def _frames_of(self, locations: Iterable[Location]) -> Iterator[int]:
        """The frames these locations (in stream order) span, each once, in order; bad ones skipped."""
        last = -1
        for location in locations:
            try:
                start, end = self._span(location)
            except CorruptImageError:
                continue
            if start == end:
                continue
            first = max(bisect_right(self.starts, start) - 1, last + 1)
            last = max(last, bisect_right(self.starts, end - 1) - 1)
            yield from range(first, last + 1)

    def prefetch(self, locations: Iterable[Location]) -> None:
        """Hint the source that the frames of these locations (in this order) will be read soon."""
        self.source.prefetch(self._ranges(self._frames_of(locations)))

    def read_many(self, locations: Sequence[Location]) -> Iterator[tuple[int, bytes]]:
        """(i, content of locations[i]) for every location, in image order (by where they lie), each
        frame decompressed once; frames are not added to the cache, which a read of everything would
        only flush. Memory: one frame and the file being read."""
        order = sorted(range(len(locations)), key=locations.__getitem__)
        self.prefetch(locations[i] for i in order)
        held_frame, held = -1, b""  # the last frame decompressed: the next files start in it
        starts = self.starts
        for i in order:
            frame, offset, size = locations[i]
            if frame == held_frame and offset >= 0 and size > 0 and offset + size <= len(held):
                yield i, held[offset : offset + size]  # most files: in the frame of the one before
                continue
            start, end = self._span(locations[i])
            if start == end:
                yield i, b""
                continue
            pieces = []
            for frame in range(bisect_right(starts, start) - 1, bisect_right(starts, end - 1)):
                if frame != held_frame:
                    cached = self.cache.get(frame)
                    held_frame, held = frame, cached if cached is not None else self.decompress(frame)
                base = starts[frame]
                pieces.append(held[max(start - base, 0) : end - base])
            yield i, pieces[0] if len(pieces) == 1 else b"".join(pieces)


# -- writing ---------------------------------------------------------------------------------------------


class _Plan:
    """The frames to write, each a list of pieces of the files' contents, and where each file lies."""

    def __init__(self, files: Iterable[tuple[bytes, bytes | memoryview]], frame_bytes: int, chunk_bytes: int):
        self.frames: list[list[bytes | memoryview]] = []
        self.small: list[int] = []  # the frames of small files, which a dictionary is trained for
        self.samples: list[bytes | memoryview] = []  # the small files
        self.locations: dict[bytes, Location] = {}
        pending: list[tuple[bytes, int]] = []  # the files of the small-file frame being filled
        pieces: list[bytes | memoryview] = []
        filled = 0
        for oid, content in files:
            size = len(content)
            if oid in self.locations:
                continue
            if size == 0:
                self.locations[oid] = EMPTY
            elif size > frame_bytes:
                # A frame of its own every chunk_bytes; the small-file frame being filled stays open.
                self.locations[oid] = (len(self.frames), 0, size)
                view = memoryview(content)
                self.frames += [[view[at : at + chunk_bytes]] for at in range(0, size, chunk_bytes)]
            else:
                if filled + size > frame_bytes:
                    self._close(pending, pieces)
                    pending, pieces, filled = [], [], 0
                pending.append((oid, filled))
                pieces.append(content)
                self.samples.append(content)
                filled += size
        if pieces:
            self._close(pending, pieces)

    def _close(self, pending: list[tuple[bytes, int]], pieces: list[bytes | memoryview]) -> None:
        frame = len(self.frames)
        for (oid, offset), piece in zip(pending, pieces, strict=True):
            self.locations[oid] = (frame, offset, len(piece))
        self.small.append(frame)
        self.frames.append(pieces)


def _dictionary_size(samples: list[bytes | memoryview]) -> int:
    total = sum(len(s) for s in samples)
    if total < DICT_MIN_CONTENT:
        return 0
    return max(MIN_DICT_BYTES, min(MAX_DICT_BYTES, total // DICT_RATIO))


def _training_set(samples: list[bytes | memoryview]) -> list[bytes]:
    """Every k-th small file, k chosen so that they hold at most TRAIN_BYTES (training takes ~10 ms a MB;
    measured on the pages: training on 4 MB of them gave 20 % larger frames than on 16 MB)."""
    total = sum(len(s) for s in samples)
    step = -(-total // TRAIN_BYTES) if total > TRAIN_BYTES else 1
    return [bytes(s) for s in samples[::step]]


def write(
    files: Iterable[tuple[bytes, bytes | memoryview]],
    *,
    level: int = LEVEL,
    frame_bytes: int = FRAME_BYTES,
    chunk_bytes: int = CHUNK_BYTES,
    dictionary_bytes: int | None = None,
    threads: int | None = None,
) -> Written:
    """The FRAMES section (and dictionary section) for `files`, given as (blob id, content) in the order
    the image lists them, e.g. its trees in pre-order: that order, which keeps a folder's files together,
    compressed best of those measured. A blob listed twice is stored once.

    `dictionary_bytes`: None chooses (a dictionary when it pays for itself), 0 means none, n trains one
    of at most n bytes and keeps it. `threads`: compressing threads (None: one per CPU). The same
    files and options give the same bytes whatever the threads do."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    if not 0 < frame_bytes <= chunk_bytes <= MAX_FRAME_BYTES:
        raise ValueError(f"need 0 < frame_bytes <= chunk_bytes <= {MAX_FRAME_BYTES}")
    plan = _Plan(files, frame_bytes, chunk_bytes)
    if len(plan.frames) > MAX_FRAMES:
        raise ValueError(f"over {MAX_FRAMES} frames: use larger chunks")
    workers = threads or len(os.sched_getaffinity(0)) or 1
    size = _dictionary_size(plan.samples) if dictionary_bytes is None else dictionary_bytes
    trained = dictionary.train(_training_set(plan.samples), size) if size and plan.samples else None
    with ThreadPoolExecutor(max_workers=workers) as pool:
        plain = _Compressing(level, None)
        done: dict[int, bytes] = {}
        encoded = None
        if trained is not None:
            stored = pool.submit(dictionary.encode, trained)
            with_dict = _Compressing(level, trained)
            if dictionary_bytes is None:  # keep it only if a sample of the frames says it pays
                sample = plan.small[:: max(1, len(plan.small) // _SAMPLE_FRAMES)]
                bare = dict(
                    zip(sample, pool.map(plain.compress, (plan.frames[i] for i in sample)), strict=True)
                )
                done = dict(
                    zip(sample, pool.map(with_dict.compress, (plan.frames[i] for i in sample)), strict=True)
                )
                content = sum(len(p) for i in sample for p in plan.frames[i])
                small = sum(len(p) for i in plan.small for p in plan.frames[i])
                saved = sum(len(bare[i]) - len(done[i]) for i in sample) * small / max(content, 1)
                if saved <= len(stored.result()):
                    trained, done = None, bare
            if trained is not None:
                encoded = stored.result()
        compressing = plain if trained is None else with_dict
        todo = [i for i in range(len(plan.frames)) if i not in done]
        done.update(zip(todo, pool.map(compressing.compress, (plan.frames[i] for i in todo)), strict=True))
    frames = [done[i] for i in range(len(plan.frames))]
    count = len(frames)
    data_at = HEAD.size + ENTRY_BYTES * count
    offsets = list(accumulate((len(f) for f in frames[:-1]), initial=data_at)) if frames else []
    flags, dict_id, dict_length = (
        (0, 0, 0) if trained is None else (DICTIONARY, compressing.dict_id, len(trained))
    )
    section = b"".join(
        [
            HEAD.pack(MAGIC, VERSION, flags, count, dict_id, dict_length, 0),
            struct.pack(f"<{count}Q", *offsets),
            struct.pack(f"<{count}I", *(len(f) for f in frames)),
            struct.pack(f"<{count}I", *(sum(len(p) for p in pieces) for pieces in plan.frames)),
            *frames,
        ]
    )
    return Written(section, encoded, plan.locations)


class _Compressing:
    """Compresses frames from any thread: one zstd compressor per thread, all configured alike, so that
    a frame's bytes do not depend on which thread compressed it."""

    def __init__(self, level: int, trained: bytes | None) -> None:
        self.level = level
        self.dict_id = 0
        self._dictionary = None
        if trained is not None:
            self._dictionary = zstd.ZstdCompressionDict(trained, dict_type=zstd.DICT_TYPE_FULLDICT)
            self._dictionary.precompute_compress(level=level)  # once, shared read-only by the threads
            self.dict_id = self._dictionary.dict_id()
        self._local = threading.local()

    def compress(self, pieces: list[bytes | memoryview]) -> bytes:
        compressor = getattr(self._local, "compressor", None)
        if compressor is None:
            compressor = self._local.compressor = zstd.ZstdCompressor(
                level=self.level,
                dict_data=self._dictionary,
                write_checksum=True,
                write_content_size=True,
                write_dict_id=True,
            )
        return compressor.compress(pieces[0] if len(pieces) == 1 else b"".join(pieces))
