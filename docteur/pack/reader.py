"""Read objects out of a PACK held in memory (an mmap'd image), resolving delta chains.

Every read is bounded: declared sizes are checked against a maximum object size, inflation never produces
more than the declared size, delta chains are walked iteratively with cycle detection, and every offset is
checked against the PACK's extent.
"""

from __future__ import annotations

import zlib
from collections import OrderedDict
from collections.abc import Callable

from docteur.errors import CorruptImageError
from docteur.git.objects import BLOB, COMMIT, OFS_DELTA, REF_DELTA, TAG, TREE, object_id
from docteur.idx.reader import PackIndex
from docteur.pack.delta import apply_delta, delta_sizes

PACK_MAGIC = b"PACK"
# Small by default: the cache serves repeated reads and delta bases, and a walk that reads everything
# must not grow the process by more than this (issue 3, goal 4).
DEFAULT_CACHE_BYTES = 4 << 20
# How much of the mapped PACK may stay resident before its pages are handed back (they remain in the
# page cache): RSS stays bounded whatever the image size.
DEFAULT_MAPPED_BYTES = 4 << 20
# What an entry costs the cache beyond its content: the bytes and tuple headers and the dict node.
_ENTRY_OVERHEAD = 160
DEFAULT_MAX_OBJECT_SIZE = 1 << 30
MAX_CHAIN = 10_000
BASE_TYPES = (COMMIT, TREE, BLOB, TAG)
# Objects up to this size inflate in one call, with no output bound: their input slice is at most about
# 16 KiB, which no zlib stream can inflate past ~17 MiB. Larger ones stream with a bound.
_ONE_SHOT = 16 << 10


class ObjectCache:
    """A least-recently-used cache of inflated objects, bounded by their total size in bytes, and one slot
    for the last object too large for it: in PACK order a large file's deltas follow their base, which
    would otherwise be inflated again for each (memory: `max_bytes` plus that one object)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self._items: OrderedDict[int, tuple[int, bytes]] = OrderedDict()
        self._large: tuple[int, tuple[int, bytes]] | None = None

    def get(self, key: int) -> tuple[int, bytes] | None:
        item = self._items.get(key)
        if item is not None:
            self._items.move_to_end(key)
        elif self._large is not None and self._large[0] == key:
            return self._large[1]
        return item

    def put(self, key: int, item: tuple[int, bytes], keep: bool = True) -> None:
        """Cache `item`; unless `keep`, only if it is too large for the LRU (it then takes the slot)."""
        cost = len(item[1]) + _ENTRY_OVERHEAD
        if cost > self.max_bytes // 4:
            self._large = (key, item)
            return
        if not keep or key in self._items:
            return
        self._items[key] = item
        self.size += cost
        while self.size > self.max_bytes:
            _, (_, old) = self._items.popitem(last=False)
            self.size -= len(old) + _ENTRY_OVERHEAD


class PackReader:
    """Objects of one PACK (`buf` holds exactly the PACK, trailer included), located through its index."""

    def __init__(
        self,
        buf: memoryview,
        index: PackIndex,
        *,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        max_object_size: int = DEFAULT_MAX_OBJECT_SIZE,
        mapped_bytes: int = DEFAULT_MAPPED_BYTES,
        release: Callable[[], None] | None = None,
    ) -> None:
        """`release`, when given, drops the resident pages of the mapping `buf` views; it is called each
        time about `mapped_bytes` of object data have been read since the last call."""
        if len(buf) < 32 or bytes(buf[:4]) != PACK_MAGIC:
            raise CorruptImageError("no PACK signature after the header")
        self.buf = buf
        self.index = index
        self.end = len(buf) - 20  # objects end where the trailing checksum starts
        self.max_object_size = max_object_size
        self.cache = ObjectCache(cache_bytes)
        # One bit per IDX position: set once that object's content hashed to its id. The IDX is not
        # checked at open, so a forged offset could otherwise serve another object's bytes.
        self._verified = bytearray((index.count + 7) // 8)
        self._release = release
        self._mapped_bytes = mapped_bytes
        self._touched = 0

    def entry_header(self, offset: int) -> tuple[int, int, int, int | bytes | None]:
        """(type, declared size, start of the zlib data, delta base: offset, raw id or None)."""
        buf, end = self.buf, self.end
        if not 12 <= offset < end:
            raise CorruptImageError(f"object offset {offset} is outside the PACK")
        byte = buf[offset]
        kind = (byte >> 4) & 7
        size = byte & 0x0F
        shift, pos = 4, offset + 1
        while byte & 0x80:
            if pos >= end or shift > 60:
                raise CorruptImageError(f"truncated object header at {offset}")
            byte = buf[pos]
            size |= (byte & 0x7F) << shift
            shift += 7
            pos += 1
        if size > self.max_object_size:
            raise CorruptImageError(f"object at {offset} declares {size} bytes, over the maximum")
        if kind in BASE_TYPES:  # most objects: test them first
            return kind, size, pos, None
        base: int | bytes
        if kind == OFS_DELTA:
            if pos >= end:
                raise CorruptImageError(f"truncated delta offset at {offset}")
            byte = buf[pos]
            pos += 1
            distance = byte & 0x7F
            while byte & 0x80:
                if pos >= end or distance > end:
                    raise CorruptImageError(f"bad delta base offset at {offset}")
                byte = buf[pos]
                pos += 1
                distance = ((distance + 1) << 7) | (byte & 0x7F)
            if not 0 < distance <= offset - 12:
                raise CorruptImageError(f"delta at {offset} has its base outside the PACK")
            base = offset - distance
        elif kind == REF_DELTA:
            if pos + 20 > end:
                raise CorruptImageError(f"truncated delta base id at {offset}")
            base = bytes(buf[pos : pos + 20])
            pos += 20
        else:
            raise CorruptImageError(f"object at {offset} has unknown type {kind}")
        return kind, size, pos, base

    def inflate(self, pos: int, size: int) -> bytes:
        """Exactly `size` bytes from the zlib stream at `pos`, never more (zlib bombs stop at size + 1)."""
        step = size + (size >> 6) + 64  # enough input for one call, even for stored (incompressible) data
        self._touched += step
        if self._touched > self._mapped_bytes and self._release is not None:
            self._touched = 0
            self._release()
        if size <= _ONE_SHOT:
            try:
                # 258 bytes of spare room: zlib's fast loop needs that much, and an exact-size buffer
                # decoded its last 258 bytes symbol by symbol (15% slower on small files).
                data = zlib.decompress(self.buf[pos : min(pos + step, self.end)], bufsize=size + 258)
            except zlib.error:
                pass  # truncated input or corrupt data: the streaming path says which
            else:
                if len(data) != size:
                    raise CorruptImageError(f"object inflates to {len(data)} bytes, {size} declared")
                return data
        d = zlib.decompressobj()
        out: list[bytes] = []
        got = 0
        try:
            while not d.eof:
                if pos >= self.end:
                    raise CorruptImageError("object data runs past the end of the PACK")
                chunk = self.buf[pos : min(pos + step, self.end)]
                pos += len(chunk)
                piece = d.decompress(chunk, size + 1 - got)
                got += len(piece)
                if got > size or (d.unconsumed_tail and not d.eof):
                    raise CorruptImageError("object inflates to more than its declared size")
                out.append(piece)
        except zlib.error as e:
            raise CorruptImageError(f"object data does not inflate: {e}") from None
        if got != size:
            raise CorruptImageError("object inflates to less than its declared size")
        return out[0] if len(out) == 1 else b"".join(out)

    def base_offset(self, base: int | bytes) -> int:
        if isinstance(base, int):
            return base
        offset = self.index.lookup(base)
        if offset is None:
            raise CorruptImageError(f"delta base {base.hex()} is not in the image")
        return offset

    def object_at(self, offset: int, keep: bool = True) -> tuple[int, bytes]:
        """(type, content) of the object stored at `offset`, deltas resolved.

        The delta bases met on the way are cached; the object itself too unless `keep` is false (a reader
        going through everything once would only evict what others reuse).
        """
        cache = self.cache
        item = cache.get(offset)
        if item is not None:
            return item
        kind, size, pos, base = self.entry_header(offset)
        if base is None:  # most objects: no chain to follow
            item = (kind, self.inflate(pos, size))
            cache.put(offset, item, keep)
            return item
        chain: list[tuple[int, int, int]] = []
        seen: set[int] = set()
        at = offset
        while True:
            if base is None:
                item = (kind, self.inflate(pos, size))
                cache.put(at, item)
                break
            if at in seen or len(chain) >= MAX_CHAIN:
                raise CorruptImageError(f"delta chain at {offset} loops or is too deep")
            seen.add(at)
            chain.append((at, size, pos))
            at = self.base_offset(base)
            cached = cache.get(at)
            if cached is not None:
                item = cached
                break
            kind, size, pos, base = self.entry_header(at)
        kind, data = item
        for at, size, pos in reversed(chain):
            data = apply_delta(data, self.inflate(pos, size), self.max_object_size)
            cache.put(at, (kind, data), keep or at != offset)
        return kind, data

    def get(self, oid: bytes) -> tuple[int, bytes]:
        """(type, content) of `oid`; KeyError if the IDX lacks it, CorruptImageError if it is not `oid`."""
        i = self.index.find(oid)
        if i < 0:
            raise KeyError(oid.hex())
        return self.get_at(i, oid)

    def get_at(self, i: int, oid: bytes, keep: bool = True, offset: int = -1) -> tuple[int, bytes]:
        """(type, content) of the object at IDX position `i`, which the IDX names `oid` (and whose PACK
        offset is `offset`, when the caller has it already)."""
        kind, data = self.object_at(offset if offset >= 0 else self.index.offset(i), keep)
        byte, bit = i >> 3, 1 << (i & 7)
        if not self._verified[byte] & bit:
            if object_id(kind, data) != oid:
                raise CorruptImageError(f"object {oid.hex()} does not hash to its id")
            self._verified[byte] |= bit
        return kind, data

    def object_size(self, offset: int) -> int:
        """Size of the object at `offset` without inflating it whole (a delta's header gives its result)."""
        _, size, pos, base = self.entry_header(offset)
        if base is None:
            return size
        item = self.cache.get(offset)
        if item is not None:
            return len(item[1])
        # The two sizes take at most 20 bytes, but a deflate block header can be long: feed input until
        # they are out (or the stream ends).
        d = zlib.decompressobj()
        head = b""
        try:
            while len(head) < 20 and not d.eof and pos < self.end:
                chunk = self.buf[pos : min(pos + 256, self.end)]
                pos += len(chunk)
                head += d.decompress(chunk, 20 - len(head))
        except zlib.error as e:
            raise CorruptImageError(f"delta at {offset} does not inflate: {e}") from None
        return delta_sizes(head)[1]
