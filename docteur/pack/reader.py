"""Read objects out of a PACK through a byte source, resolving delta chains.

Every read is bounded: declared sizes are checked against a maximum object size, inflation never produces
more than the declared size, delta chains are walked iteratively with cycle detection, and every offset is
checked against the PACK's extent.
"""

from __future__ import annotations

import zlib
from collections import OrderedDict
from collections.abc import Callable

from docteur.bytesource import ByteSource
from docteur.errors import CorruptImageError
from docteur.git.objects import BLOB, COMMIT, OFS_DELTA, REF_DELTA, TAG, TREE, object_id
from docteur.idx.reader import PackIndex
from docteur.pack.delta import apply_delta, delta_sizes

PACK_MAGIC = b"PACK"
# Small by default: the cache serves repeated reads and delta bases, and a walk that reads everything
# must not grow the process by more than this (issue 3, goal 4).
DEFAULT_CACHE_BYTES = 2 << 20
# What an entry costs the cache beyond its content: the bytes and tuple headers and the dict node.
_ENTRY_OVERHEAD = 160
DEFAULT_MAX_OBJECT_SIZE = 1 << 30
MAX_CHAIN = 10_000
BASE_TYPES = (COMMIT, TREE, BLOB, TAG)
# Objects up to this size inflate in one call, with no output bound: their input slice is at most about
# 16 KiB, which no zlib stream can inflate past ~17 MiB. Larger ones stream with a bound.
_ONE_SHOT = 16 << 10
# An entry header is at most 10 bytes of type and size, then a base: 10 bytes of offset or a 20-byte id.
_HEADER_MAX = 32


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
    """Objects of the PACK that lies at [`at`, `at + length`) of `source` (trailer included), located
    through its index. Offsets are relative to the PACK's start, as in the IDX."""

    def __init__(
        self,
        source: ByteSource,
        index: PackIndex,
        *,
        at: int = 0,
        length: int | None = None,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        max_object_size: int = DEFAULT_MAX_OBJECT_SIZE,
    ) -> None:
        length = source.size - at if length is None else length
        if length < 32 or bytes(source.read(at, 4)) != PACK_MAGIC:
            raise CorruptImageError("no PACK signature after the header")
        self.source = source
        self.at = at
        self.length = length
        self.index = index
        self.end = length - 20  # objects end where the trailing checksum starts
        self.max_object_size = max_object_size
        self.cache = ObjectCache(cache_bytes)
        # Where each entry ends, when the image records it (its extents section): reads then take exactly
        # the entry's bytes, which a remote image fetches and nothing more.
        self.entry_end: Callable[[int], int | None] | None = None
        # One bit per IDX position: set once that object's content hashed to its id. The IDX is not
        # checked at open, so a forged offset could otherwise serve another object's bytes.
        self._verified = bytearray((index.count + 7) // 8)

    def read(self, pos: int, length: int) -> bytes | memoryview:
        """`length` bytes of the PACK at `pos`, fewer where its objects end."""
        return self.source.read(self.at + pos, min(length, self.end - pos))

    def entry_header(
        self, offset: int, head: bytes | memoryview | None = None
    ) -> tuple[int, int, int, int | bytes | None]:
        """(type, declared size, start of the zlib data, delta base: offset, raw id or None), parsed from
        `head` when the caller read the entry's bytes already."""
        end = self.end
        if not 12 <= offset < end:
            raise CorruptImageError(f"object offset {offset} is outside the PACK")
        if head is None:
            head = self.source.read(self.at + offset, min(_HEADER_MAX, end - offset))
        last = len(head)
        byte = head[0]
        kind = (byte >> 4) & 7
        size = byte & 0x0F
        shift, pos = 4, 1
        while byte & 0x80:
            if pos >= last or shift > 60:
                raise CorruptImageError(f"truncated object header at {offset}")
            byte = head[pos]
            size |= (byte & 0x7F) << shift
            shift += 7
            pos += 1
        if size > self.max_object_size:
            raise CorruptImageError(f"object at {offset} declares {size} bytes, over the maximum")
        if kind in BASE_TYPES:  # most objects: test them first
            return kind, size, offset + pos, None
        base: int | bytes
        if kind == OFS_DELTA:
            if pos >= last:
                raise CorruptImageError(f"truncated delta offset at {offset}")
            byte = head[pos]
            pos += 1
            distance = byte & 0x7F
            while byte & 0x80:
                if pos >= last or distance > end:
                    raise CorruptImageError(f"bad delta base offset at {offset}")
                byte = head[pos]
                pos += 1
                distance = ((distance + 1) << 7) | (byte & 0x7F)
            if not 0 < distance <= offset - 12:
                raise CorruptImageError(f"delta at {offset} has its base outside the PACK")
            base = offset - distance
        elif kind == REF_DELTA:
            if pos + 20 > last:
                raise CorruptImageError(f"truncated delta base id at {offset}")
            base = bytes(head[pos : pos + 20])
            pos += 20
        else:
            raise CorruptImageError(f"object at {offset} has unknown type {kind}")
        return kind, size, offset + pos, base

    def inflate(
        self, pos: int, size: int, stop: int | None = None, stream: bytes | memoryview | None = None
    ) -> bytes:
        """Exactly `size` bytes from the zlib stream at `pos`, never more (zlib bombs stop at size + 1).

        `stop`, when known, is where the entry ends: no byte past it is read. `stream`, when the caller
        read them already, is the bytes from `pos` to `stop`."""
        step = size + (size >> 6) + 64  # enough input for one call, even for stored (incompressible) data
        if stop is not None:
            step = min(step, stop - pos)
        if size <= _ONE_SHOT:
            try:
                # 258 bytes of spare room: zlib's fast loop needs that much, and an exact-size buffer
                # decoded its last 258 bytes symbol by symbol (15% slower on small files).
                data = zlib.decompress(self.read(pos, step) if stream is None else stream, bufsize=size + 258)
            except zlib.error:
                pass  # truncated input or corrupt data: the streaming path says which
            else:
                if len(data) != size:
                    raise CorruptImageError(f"object inflates to {len(data)} bytes, {size} declared")
                return data
        d = zlib.decompressobj()
        out: list[bytes] = []
        got = 0
        limit = self.end if stop is None else min(stop, self.end)
        try:
            while not d.eof:
                if pos >= limit:
                    raise CorruptImageError("object data runs past the end of its entry")
                chunk = self.read(pos, min(step, limit - pos))
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

    def plain_blob(self, offset: int, length: int, size: int) -> bytes | None:
        """The content of the entry at [offset, offset + length) when it is a whole blob of `size`
        bytes (read_all's fast path: one read, one inflate, no cache); None for anything else (a delta,
        another size or type, damage), which the caller reads the general way, which says what is wrong."""
        if not 12 <= offset < self.end or not 0 < length <= _ONE_SHOT or length > self.end - offset:
            return None
        raw = self.source.read(self.at + offset, length)
        byte = raw[0]
        if byte >> 4 & 7 != BLOB:
            return None
        declared, shift, pos = byte & 0x0F, 4, 1
        while byte & 0x80:
            if pos >= length or shift > 60:
                return None
            byte = raw[pos]
            declared |= (byte & 0x7F) << shift
            shift += 7
            pos += 1
        if declared != size:
            return None
        try:
            data = zlib.decompress(raw[pos:], bufsize=size + 258)
        except zlib.error:
            return None
        return data if len(data) == size else None

    def _stop(self, offset: int) -> int | None:
        return None if self.entry_end is None else self.entry_end(offset)

    def base_offset(self, base: int | bytes) -> int:
        if isinstance(base, int):
            return base
        offset = self.index.lookup(base)
        if offset is None:
            raise CorruptImageError(f"delta base {base.hex()} is not in the image")
        return offset

    def object_at(self, offset: int, keep: bool = True, stop: int | None = None) -> tuple[int, bytes]:
        """(type, content) of the object stored at `offset` (whose entry ends at `stop`, when the caller
        knows), deltas resolved.

        The delta bases met on the way are cached; the object itself too unless `keep` is false (a reader
        going through everything once would only evict what others reuse).
        """
        cache = self.cache
        item = cache.get(offset)
        if item is not None:
            return item
        if stop is None:
            stop = self._stop(offset)
        # With the entry's extent known, a small entry is read once: header and data.
        whole = self.read(offset, stop - offset) if stop is not None and stop - offset <= _ONE_SHOT else None
        kind, size, pos, base = self.entry_header(offset, whole)
        if base is None:  # most objects: no chain to follow
            stream = None if whole is None else whole[pos - offset :]
            item = (kind, self.inflate(pos, size, stop, stream))
            cache.put(offset, item, keep)
            return item
        chain: list[tuple[int, int, int, int | None]] = []
        seen: set[int] = set()
        at = offset
        while True:
            if base is None:
                item = (kind, self.inflate(pos, size, stop))
                cache.put(at, item)
                break
            if at in seen or len(chain) >= MAX_CHAIN:
                raise CorruptImageError(f"delta chain at {offset} loops or is too deep")
            seen.add(at)
            chain.append((at, size, pos, stop))
            at = self.base_offset(base)
            cached = cache.get(at)
            if cached is not None:
                item = cached
                break
            kind, size, pos, base = self.entry_header(at)
            stop = self._stop(at)
        kind, data = item
        for at, size, pos, stop in reversed(chain):
            data = apply_delta(data, self.inflate(pos, size, stop), self.max_object_size)
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
                chunk = self.read(pos, 256)
                pos += len(chunk)
                head += d.decompress(chunk, 20 - len(head))
        except zlib.error as e:
            raise CorruptImageError(f"delta at {offset} does not inflate: {e}") from None
        return delta_sizes(head)[1]
