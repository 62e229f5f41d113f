"""Where the views read files from: PACK entries (zlib images) or zstd frames (zstd images), each file
checked against the blob id its tree gives before it is served.

Both kinds answer the same three questions: a file's checked content, where it lies (the order a full
read goes in), and the contents of many files read in that order.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator

from docteur.errors import CorruptImageError
from docteur.fs.entry import UNKNOWN, Entry, shown
from docteur.git.objects import BLOB, object_id
from docteur.pack.reader import PackReader
from docteur.zstd.frames import FramesReader

# Files read lately whose content hashed to its id: read again, they are not hashed again.
_CHECKED = 4096

Location = tuple[int, int, int]  # a framed blob's (frame, offset, size)


def _wrong(key: bytes, entry: Entry) -> CorruptImageError:
    return CorruptImageError(
        f"path index: {shown(key)}: the object where the index puts it is not blob {entry.oid.hex()} "
        f"of {entry.size} bytes"
    )


class _Checked:
    """The last few locations whose content was checked, and the id it hashed to."""

    def __init__(self) -> None:
        self._seen: OrderedDict[object, bytes] = OrderedDict()

    def ok(self, where: object, oid: bytes) -> bool:
        return self._seen.get(where) == oid

    def add(self, where: object, oid: bytes) -> None:
        self._seen[where] = oid
        if len(self._seen) > _CHECKED:
            self._seen.popitem(last=False)  # O(1), where popping a dict's first key is not


class PackContents:
    """Files that are PACK entries: the path index gives their extent, else the IDX their offset."""

    def __init__(self, pack: PackReader) -> None:
        self._pack = pack
        self._checked = _Checked()

    def read(self, key: bytes, entry: Entry, keep: bool = True) -> bytes:
        """The checked content of the file `entry` at path `key` (kept in the object cache if `keep`)."""
        pack = self._pack
        if entry.where == UNKNOWN:
            i = pack.index.find(entry.oid)
            if i < 0:
                raise CorruptImageError(f"blob {entry.oid.hex()} is missing from the image")
            kind, data = pack.get_at(i, entry.oid, keep)
            if kind != BLOB:
                raise CorruptImageError(f"{shown(key)}: object {entry.oid.hex()} should be a blob")
            return data
        if entry.length > 0 and pack.cache.get(entry.where) is None:
            data = self._whole(entry)
            if data is not None:
                pack.cache.put(entry.where, (BLOB, data), keep)
                self._checked.add(entry.where, entry.oid)
                return data
        stop = entry.where + entry.length if entry.length else None
        kind, data = pack.object_at(entry.where, keep, stop)
        # The size is checked every time: another commit's record may give the same entry another size.
        if len(data) != entry.size:
            raise _wrong(key, entry)
        if not self._checked.ok(entry.where, entry.oid):
            if kind != BLOB or object_id(BLOB, data) != entry.oid:
                raise _wrong(key, entry)
            self._checked.add(entry.where, entry.oid)
        return data

    def _whole(self, entry: Entry) -> bytes | None:
        """Most files are whole blobs whose extent the index gives: their checked content, read in one
        call and inflated in one; None for any other, read the general way (which says what is wrong)."""
        data = self._pack.plain_blob(entry.where, entry.length, entry.size)
        return data if data is not None and object_id(BLOB, data) == entry.oid else None

    def order(self, entry: Entry) -> int:
        """Where a file's object lies in the PACK."""
        if entry.where != UNKNOWN:
            return entry.where
        offset = self._pack.index.lookup(entry.oid)
        if offset is None:
            raise CorruptImageError(f"blob {entry.oid.hex()} is missing from the image")
        return offset

    def size(self, entry: Entry) -> int:
        """A file's size, from its entry's header (not confirmed until read)."""
        return self._pack.object_size(self.order(entry))

    def read_many(self, files: list[tuple[bytes, Entry]]) -> Iterator[tuple[int, bytes]]:
        """(position in `files`, checked content) of each file (path, entry), `files` being sorted by
        order(); nothing is cached: a single pass would only evict what repeated reads use."""
        pack = self._pack
        # A remote source fetches the entries ahead, in this order (a local one ignores the hint).
        pack.source.prefetch(
            (pack.at + e.where, e.length) for _, e in files if e.where != UNKNOWN and e.length
        )
        whole, read = self._whole, self.read
        for i, (key, entry) in enumerate(files):
            data = whole(entry) if entry.length > 0 else None
            yield i, data if data is not None else read(key, entry, False)


class FrameContents:
    """Files in zstd frames: the path index gives their location; a history's blobs, which no indexed
    tree reaches, `locate` finds by id."""

    def __init__(
        self, frames: FramesReader, locate: Callable[[bytes], Location | None], max_size: int
    ) -> None:
        self.frames = frames
        self._locate = locate
        self._max_size = max_size
        self._checked = _Checked()

    def _where(self, entry: Entry) -> Location:
        if entry.where != UNKNOWN:
            return entry.where, entry.length, entry.size
        found = self._locate(entry.oid)
        if found is None:
            raise CorruptImageError(f"blob {entry.oid.hex()} is missing from the image")
        return found

    def read(self, key: bytes, entry: Entry, keep: bool = True) -> bytes:
        frame, offset, size = where = self._where(entry)
        if size > self._max_size:
            raise CorruptImageError(f"{shown(key)}: {size} bytes, over the maximum object size")
        data = self.frames.read(frame, offset, size)
        if not self._checked.ok(where, entry.oid):
            if len(data) != size or object_id(BLOB, data) != entry.oid:
                raise _wrong(key, entry)
            self._checked.add(where, entry.oid)
        return data

    def order(self, entry: Entry) -> Location:
        return self._where(entry)

    def size(self, entry: Entry) -> int:
        return self._where(entry)[2]

    def read_many(self, files: list[tuple[bytes, Entry]]) -> Iterator[tuple[int, bytes]]:
        """(position in `files`, checked content), in image order: each frame decompressed once."""
        wheres = [self._where(entry) for _, entry in files]
        for (key, _), (_, _, size) in zip(files, wheres, strict=True):
            if size > self._max_size:
                raise CorruptImageError(f"{shown(key)}: {size} bytes, over the maximum object size")
        for i, data in self.frames.read_many(wheres):
            key, entry = files[i]
            if len(data) != wheres[i][2] or object_id(BLOB, data) != entry.oid:
                raise _wrong(key, entry)
            yield i, data


Contents = PackContents | FrameContents
