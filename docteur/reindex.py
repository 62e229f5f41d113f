"""docteur reindex: give an image without a path index (OCaml docteur's, an older docteur's) its sections.

The header, PACK and IDX are copied as they are (the header's IDX offset made exact, for OCaml images
that stored it one block early) and the sections are built from the PACK alone, exactly as
docteur-make builds them: the result is bit-identical to what docteur-make writes for the same source
and options. The refs an image records are kept. The output replaces its target atomically (a
temporary file beside it, then a rename).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from docteur.blocksize import check_block_size, consistent_block_sizes
from docteur.bytesource import ByteSource, chunks
from docteur.bytesource.mapped import MappedFile
from docteur.errors import CorruptImageError
from docteur.image.format import PACK_OFFSET, Placement, locate
from docteur.image.writer import write_image
from docteur.pack.reader import PackReader
from docteur.sections import REFS, refs
from docteur.sections.build import build_sections
from docteur.sections.table import SectionTable, locate_table


@dataclass(frozen=True)
class Reindexed:
    commit: str
    block_size: int
    size: int


def reindex(
    image: str | Path, output: str | Path | None = None, *, block_size: int | None = None
) -> Reindexed:
    """Write `image` with freshly built sections to `output` (by default, over `image` itself).

    The block size is the one the image's section table records, else the smallest its layout agrees
    with, unless `block_size` is given.
    """
    if block_size is not None:
        check_block_size(block_size)
    target = Path(output if output is not None else image)
    with MappedFile(image) as source:
        placement, index = locate(source)
        pack_end = PACK_OFFSET + placement.pack_length
        sha = hashlib.sha1()
        for piece in chunks(source, PACK_OFFSET, placement.pack_length - 20):
            sha.update(piece)
        if sha.digest() != bytes(source.read(pack_end - 20, 20)) or not index.checksum_ok():
            raise CorruptImageError(f"{source.name}: its PACK or IDX checksum is wrong: run docteur-verify")
        table = _table_of(source, placement.idx_end)
        if block_size is None:
            block_size = block_size_of(source, placement, table)
        named = _refs_of(source, table)
        if named and named[0][1] != placement.commit:
            raise CorruptImageError(f"{source.name}: its first ref is not the header's commit")
        commits = list(dict.fromkeys(commit for _, commit in named)) or [placement.commit]
        pack = PackReader(source, index, at=PACK_OFFSET, length=placement.pack_length)
        sections = build_sections(pack, commits, named)
        idx = bytes(source.read(placement.idx_offset, placement.idx_length))
        size = write_image(
            target,
            placement.commit,
            (source, PACK_OFFSET, placement.pack_length),
            idx,
            block_size,
            sections,
        )
    return Reindexed(placement.commit.hex(), block_size, size)


def _table_of(source: MappedFile, idx_end: int) -> SectionTable | None:
    try:
        return locate_table(source, idx_end)
    except CorruptImageError:
        return None  # a damaged extension is rebuilt, whatever it said


def _refs_of(source: MappedFile, table: SectionTable | None) -> list[tuple[bytes, bytes]]:
    """The refs the image records (none: an image of HEAD alone)."""
    found = table.find(REFS) if table is not None else None
    return [] if found is None else refs.decode(bytes(source.read(found.offset, found.length)))


def block_size_of(source: ByteSource, placement: Placement, table: SectionTable | None) -> int:
    """An image's block size: the one its section table records, else the smallest its layout fits."""
    if table is not None:
        return table.block_size
    pack_end = PACK_OFFSET + placement.pack_length
    # A file's size tells the block size apart where the IDX offset alone does not; a device's does not.
    size = source.size if os.path.isfile(source.name) else None
    offset, end = placement.idx_offset, placement.idx_end
    fits = consistent_block_sizes(pack_end, offset, end, size) or consistent_block_sizes(
        pack_end, offset, end, None
    )
    if not fits:
        raise CorruptImageError(f"{source.name}: its layout fits no block size: give one with --bs")
    return fits[0]
