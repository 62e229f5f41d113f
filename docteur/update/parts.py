"""An image as delta and patch see it: its PACK's entries in PACK order (ordinals), where each starts and
ends, its IDX, its section table and where its data ends.

Per object it holds three compact arrays (16 bytes), not Python objects: the bytes stay in the image,
read through its byte source.
"""

from __future__ import annotations

import hashlib
import os
import stat
from array import array
from bisect import bisect_left
from pathlib import Path

from docteur.blocksize import align, consistent_block_sizes
from docteur.bytesource import chunks
from docteur.bytesource.mapped import MappedFile
from docteur.errors import CorruptImageError
from docteur.image.format import PACK_OFFSET, Placement, locate
from docteur.pack.reader import PackReader
from docteur.sections.table import SectionTable, locate_table


def typesize_length(head: bytes | memoryview) -> int:
    """How many bytes of an entry header spell its type and size (an OFS distance or base id follows)."""
    n = 1
    while head[n - 1] & 0x80:
        n += 1
    return n


class ImageParts:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self.source = MappedFile(self.path)
        try:
            self._open()
        except BaseException:
            self.source.close()
            raise

    def _open(self) -> None:
        self.placement: Placement
        self.placement, self.index = locate(self.source)
        placement = self.placement
        self.pack = PackReader(self.source, self.index, at=PACK_OFFSET, length=placement.pack_length)
        self.table: SectionTable | None = locate_table(self.source, placement.idx_end)
        self.data_end = self.table.end if self.table is not None else placement.idx_end
        self.commit = placement.commit
        n = self.count = self.index.count
        by_position = array("Q", (offset for _, offset, _ in self.index.entries()))
        order = sorted(range(n), key=by_position.__getitem__)
        self.positions = array("I", order)  # ordinal -> IDX position
        self.offsets = array("Q", (by_position[i] for i in order))  # ordinal -> PACK offset
        self.ordinals = array("I", bytes(4 * n))  # IDX position -> ordinal
        for ordinal, position in enumerate(order):
            self.ordinals[position] = ordinal
        self.entries_end = placement.pack_length - 20
        if n and (self.offsets[0] != 12 or self.offsets[-1] >= self.entries_end):
            raise CorruptImageError(f"{self.path}: its IDX names offsets outside its PACK")

    # -- entries ------------------------------------------------------------------------------------------

    def end_of(self, ordinal: int) -> int:
        return self.offsets[ordinal + 1] if ordinal + 1 < self.count else self.entries_end

    def oid(self, ordinal: int) -> bytes:
        return self.index.name(self.positions[ordinal])

    def crc(self, ordinal: int) -> int:
        return self.index.crc32(self.positions[ordinal])

    def ordinal_of(self, oid: bytes) -> int:
        """The ordinal of the entry holding `oid`, or -1."""
        position = self.index.find(oid)
        return -1 if position < 0 else self.ordinals[position]

    def ordinal_at(self, offset: int) -> int:
        """The ordinal of the entry starting at PACK offset `offset`; CorruptImageError if none does."""
        k = bisect_left(self.offsets, offset)
        if k == self.count or self.offsets[k] != offset:
            raise CorruptImageError(f"{self.path}: a delta's base at {offset} is not an entry's start")
        return k

    # -- the image as a whole -----------------------------------------------------------------------------

    def sha256(self, end: int | None = None) -> bytes:
        """SHA-256 of the image's bytes up to its data end (or `end`): its padding is not hashed, so the
        same image on a device that a VM pads with zeros hashes the same."""
        h = hashlib.sha256()
        for piece in chunks(self.source, 0, self.data_end if end is None else end):
            h.update(piece)
        return h.digest()

    def is_regular_file(self) -> bool:
        return stat.S_ISREG(os.stat(self.path).st_mode)

    def layout(self) -> tuple[int, int]:
        """(block size, size) docteur writes for this image: the table's block size and its data end
        rounded up to it; for an image without a table, a block size its layout agrees with (a file's
        size decides between them), and that size."""
        if self.table is not None:
            return self.table.block_size, align(self.data_end, self.table.block_size)
        p = self.placement
        pack_end = PACK_OFFSET + p.pack_length
        size = self.source.size if self.is_regular_file() else None
        fits = consistent_block_sizes(pack_end, p.idx_offset, p.idx_end, size)
        if fits and size is not None:
            return fits[0], size
        fits = consistent_block_sizes(pack_end, p.idx_offset, p.idx_end, None)
        if not fits:
            raise CorruptImageError(f"{self.path}: its layout fits no block size")
        return fits[0], align(p.idx_end, fits[0])

    def close(self) -> None:
        self.source.close()

    def __enter__(self) -> ImageParts:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """Whether two paths name one file or one device."""
    try:
        sa, sb = os.stat(a), os.stat(b)
    except FileNotFoundError:
        return False
    if stat.S_ISBLK(sa.st_mode) and stat.S_ISBLK(sb.st_mode):
        return sa.st_rdev == sb.st_rdev
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def is_device(path: Path) -> bool:
    try:
        return stat.S_ISBLK(path.stat().st_mode)
    except FileNotFoundError:
        return False
