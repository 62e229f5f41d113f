"""The checks of the header, the layout, the PACK, the IDX and every object reachable from the commit."""

from __future__ import annotations

import hashlib
import itertools
import struct
import zlib
from collections.abc import Callable

from docteur.blocksize import MIN_BLOCK_SIZE, align, consistent_block_sizes
from docteur.bytesource import ByteSource, chunks
from docteur.errors import CorruptImageError
from docteur.git.objects import (
    BLOB,
    COMMIT,
    MODE_DIR,
    MODE_GITLINK,
    TREE,
    CommitInfo,
    object_id,
    parse_commit,
    parse_tree,
    tree_problems,
)
from docteur.idx.reader import PackIndex
from docteur.image.format import PACK_OFFSET, Placement
from docteur.pack.delta import apply_delta
from docteur.pack.reader import PackReader
from docteur.sections.table import SectionTable

VERIFY_CACHE_BYTES = 128 << 20


def is_zero(source: ByteSource, start: int, end: int) -> bool:
    return all(not bytes(piece).strip(b"\0") for piece in chunks(source, start, end - start))


def _sha1(source: ByteSource, start: int, end: int) -> bytes:
    h = hashlib.sha1()
    for piece in chunks(source, start, end - start):
        h.update(piece)
    return h.digest()


def _crc32(source: ByteSource, start: int, end: int) -> int:
    crc = 0
    for piece in chunks(source, start, end - start):
        crc = zlib.crc32(piece, crc)
    return crc


def _inflate_exactly(source: ByteSource, start: int, end: int, size: int) -> bytes:
    """Inflate a whole entry's data: it must give `size` bytes and end exactly where the entry ends."""
    d = zlib.decompressobj()
    out: list[bytes] = []
    got = 0
    try:
        for piece in chunks(source, start, end - start):
            if d.eof:
                raise CorruptImageError("data is followed by stray bytes")
            out.append(d.decompress(piece, size + 1 - got))
            got += len(out[-1])
            if got > size or d.unconsumed_tail:
                raise CorruptImageError(f"data inflates to more than the {size} bytes declared")
    except zlib.error as e:
        raise CorruptImageError(f"data does not inflate: {e}") from None
    if got != size or not d.eof:
        raise CorruptImageError(f"data inflates to {got} bytes, {size} declared")
    if d.unused_data:
        raise CorruptImageError("data is followed by stray bytes")
    return b"".join(out)


class ImageChecker:
    """Each check adds one line per problem through `problem`; the counts and the block size found are
    kept as attributes."""

    def __init__(self, source: ByteSource, device: bool, problem: Callable[[str], None]) -> None:
        self.problem = problem
        self.source = source
        self.device = device
        self.objects_ok = 0
        self.block_size: int | None = None
        self.kinds: dict[bytes, int] = {}
        # Where each checked object lies: the walk reads them from there, not through the IDX lookup,
        # which a damaged fan-out table can break for objects that are there.
        self.offsets: dict[bytes, int] = {}

    def layout(self, placement: Placement, table: SectionTable | None) -> None:
        if placement.stored_idx_offset != placement.idx_offset:
            self.problem(
                f"header names IDX offset {placement.stored_idx_offset}, "
                f"but the IDX starts at {placement.idx_offset}"
            )
        pack_end = PACK_OFFSET + placement.pack_length
        data_end = table.end if table is not None else placement.idx_end
        recorded = table.block_size if table is not None else None
        size = None if self.device else self.source.size
        fits = consistent_block_sizes(pack_end, placement.idx_offset, data_end, size)
        block = (recorded if recorded in fits else None) if recorded else (fits[-1] if fits else None)
        if block is None:
            self.problem(
                f"IDX offset {placement.idx_offset} and image size {self.source.size} are not the PACK's "
                "and the image's ends rounded up to "
                + ("the block size its section table records" if recorded else "one block size")
            )
            block = recorded or MIN_BLOCK_SIZE
        self.block_size = block
        if not is_zero(self.source, pack_end, placement.idx_offset):
            self.problem("padding between the PACK and the IDX is not all zeros")
        if table is not None:
            end = table.offset  # the padding beyond is the section checks'
        else:
            end = align(placement.idx_end, block) if self.device else self.source.size
        if not is_zero(self.source, placement.idx_end, end):
            self.problem("padding after the IDX is not all zeros")

    def checksums(self, sections: Placement, index: PackIndex) -> None:
        end = PACK_OFFSET + sections.pack_length
        version, count = struct.unpack(">II", self.source.read(PACK_OFFSET + 4, 8))
        if version not in (2, 3):
            self.problem(f"unsupported PACK version {version}")
        if count != index.count:
            self.problem(f"PACK holds {count} objects, IDX lists {index.count}")
        if _sha1(self.source, PACK_OFFSET, end - 20) != bytes(self.source.read(end - 20, 20)):
            self.problem("PACK checksum mismatch")
        if not index.checksum_ok():
            self.problem("IDX checksum mismatch")

    def objects(self, reader: PackReader, index: PackIndex) -> None:
        rows = sorted((offset, oid, crc) for oid, offset, crc in index.entries())
        names = list(index)
        if any(a >= b for a, b in itertools.pairwise(names)):
            self.problem("IDX object ids are not strictly sorted")
        counts = [0] * 256
        for oid in names:
            counts[oid[0]] += 1
        if list(itertools.accumulate(counts)) != list(index.fanout):
            self.problem("IDX fan-out table does not match its object ids")
        for i, (offset, oid, crc) in enumerate(rows):
            end = rows[i + 1][0] if i + 1 < len(rows) else reader.end
            where = f"object {oid.hex()} at {offset}"
            if not 12 <= offset < end:
                self.problem(f"{where}: offset outside the PACK or shared with another object")
                continue
            if _crc32(self.source, PACK_OFFSET + offset, PACK_OFFSET + end) != crc:
                self.problem(f"{where}: CRC32 mismatch")
                continue
            try:
                kind, data = self._resolve(reader, offset, end)
            except CorruptImageError as e:
                self.problem(f"{where}: {e}")
                continue
            if object_id(kind, data) != oid:
                self.problem(f"{where}: content does not hash to its id")
                continue
            self.kinds[oid] = kind
            self.offsets[oid] = offset
            self.objects_ok += 1

    @staticmethod
    def _resolve(reader: PackReader, offset: int, end: int) -> tuple[int, bytes]:
        _, size, pos, base = reader.entry_header(offset)
        data = _inflate_exactly(reader.source, reader.at + pos, reader.at + end, size)
        if base is None:
            kind = reader.entry_header(offset)[0]
        else:
            kind, base_data = reader.object_at(reader.base_offset(base))
            data = apply_delta(base_data, data, reader.max_object_size)
        reader.cache.put(offset, (kind, data))
        return kind, data

    def reachable(self, reader: PackReader, commit: bytes, what: str = "the header") -> CommitInfo | None:
        if self.kinds.get(commit) != COMMIT:
            self.problem(f"commit {commit.hex()} named by {what} is missing or not a commit")
            return None
        info = parse_commit(commit.hex(), reader.object_at(self.offsets[commit])[1])
        pending = [(bytes.fromhex(info.tree), "/")]
        seen: set[bytes] = set()
        while pending:
            tree, path = pending.pop()
            if tree in seen:
                continue
            seen.add(tree)
            if self.kinds.get(tree) != TREE:
                self.problem(f"tree {tree.hex()} ({path}) is missing or not a tree")
                continue
            entries = parse_tree(reader.object_at(self.offsets[tree])[1])
            for p in tree_problems(entries):
                self.problem(f"tree {tree.hex()} ({path}): {p}")
            for e in entries:
                child = path + e.name.decode("utf-8", "backslashreplace")
                if e.mode == MODE_DIR:
                    pending.append((e.oid, child + "/"))
                elif e.mode != MODE_GITLINK and self.kinds.get(e.oid) != BLOB:
                    self.problem(f"blob {e.oid.hex()} ({child}) is missing or not a blob")
        return info
