"""Seeded mutations of an honest image: a case is reproducible from (seed, number) and that image.

Families hit each part of the layout (header, PACK, padding, IDX, the extension's table and sections,
tail) with bit flips, random bytes, zeroed runs and misplaced blocks; truncate at every boundary and at
random points; forge IDX offsets, the header's IDX offset, entry sizes and delta bases in place; re-seal
a damaged PACK (fresh PACK checksum, CRCs and IDX) so that only the object ids are left to catch it; and
re-seal a damaged section (fresh section and table checksums) so that only the reader's own checks of
its content are left.
"""

from __future__ import annotations

import hashlib
import random
import struct
import subprocess
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gitservers import GIT_ISOLATION

from docteur.bytesource.memory import InMemory
from docteur.git.objects import OFS_DELTA
from docteur.idx.reader import LARGE_OFFSET_FLAG, PackIndex
from docteur.idx.writer import encode_index
from docteur.image.format import PACK_OFFSET, locate
from docteur.pack.writer import ofs_distance
from docteur.sections import REFS
from docteur.sections.table import ENTRY, HEAD, SectionTable, locate_table

from . import section_mutations
from .section_mutations import reseal_section


@dataclass(frozen=True)
class Layout:
    """Where the sections of the honest image lie, and its objects (offset-sorted, with their ends)."""

    size: int
    pack_end: int  # absolute
    idx_offset: int
    idx_end: int
    block: int
    objects: tuple[tuple[int, int, bytes], ...]  # (absolute start, absolute end, id)
    index: PackIndex
    table: SectionTable | None

    @classmethod
    def of(cls, image: bytes) -> Layout:
        sections, index = locate(InMemory(image))
        pack_end = PACK_OFFSET + sections.pack_length
        rows = sorted((offset, oid) for oid, offset, _ in index.entries())
        ends = [offset for offset, _ in rows[1:]] + [sections.pack_length - 20]
        objects = tuple(
            (PACK_OFFSET + o, PACK_OFFSET + e, oid) for (o, oid), e in zip(rows, ends, strict=True)
        )
        table = locate_table(InMemory(image), sections.idx_end)
        block = table.block_size if table is not None else _block_of(sections.idx_offset, pack_end)
        return cls(len(image), pack_end, sections.idx_offset, sections.idx_end, block, objects, index, table)

    def regions(self) -> dict[str, tuple[int, int]]:
        """Named byte ranges; empty ones (e.g. no padding) are left out."""
        names = self.idx_offset + 8 + 1024
        count = self.index.count
        found = {
            "header-commit": (0, 20),
            "header-offset": (20, PACK_OFFSET),
            "pack-header": (PACK_OFFSET, PACK_OFFSET + 12),
            "pack-objects": (PACK_OFFSET + 12, self.pack_end - 20),
            "pack-checksum": (self.pack_end - 20, self.pack_end),
            "pack-padding": (self.pack_end, self.idx_offset),
            "idx-fanout": (self.idx_offset, names),
            "idx-names": (names, names + 20 * count),
            "idx-crcs": (names + 20 * count, names + 24 * count),
            "idx-offsets": (names + 24 * count, names + 28 * count),
            "idx-checksums": (self.idx_end - 40, self.idx_end),
            "tail-padding": (self.idx_end, self.table.offset if self.table else self.size),
        }
        if self.table is not None:
            entries = self.table.offset + HEAD.size
            found["table-head"] = (self.table.offset, entries)
            found["table-entries"] = (entries, entries + ENTRY.size * len(self.table.sections))
            found["table-checksum"] = (
                self.table.offset + self.table.length - 32,
                self.table.offset + self.table.length,
            )
            at = self.table.offset + self.table.length
            for s in self.table.sections:
                found[f"{s.name}-padding"] = (at, s.offset)
                found[f"{s.name}-section"] = (s.offset, s.end)
                at = s.end
            found["extension-tail"] = (at, self.size)
        return {name: span for name, span in found.items() if span[0] < span[1]}

    def boundaries(self) -> list[int]:
        return sorted({b for span in self.regions().values() for b in span} | {1, self.size - 1})


def _block_of(idx_offset: int, pack_end: int) -> int:
    block = 512
    while not (idx_offset % block == 0 and idx_offset - pack_end <= block):
        block <<= 1
    return block


def reseal(image: bytearray, layout: Layout) -> bytearray:
    """Recompute the PACK checksum, every CRC32 and the IDX for the PACK as it now is (same offsets)."""
    pack_end = layout.pack_end
    checksum = hashlib.sha1(image[PACK_OFFSET : pack_end - 20]).digest()
    image[pack_end - 20 : pack_end] = checksum
    rows = [(oid, start - PACK_OFFSET, zlib.crc32(image[start:end])) for start, end, oid in layout.objects]
    return _replace_idx(image, layout, encode_index(rows, checksum))


def _replace_idx(image: bytearray, layout: Layout, idx: bytes) -> bytearray:
    """The image with another IDX of the same length; what follows it (the extension) is kept."""
    return image[: layout.idx_offset] + idx + image[layout.idx_offset + len(idx) :]


def _span(layout: Layout, rng: random.Random) -> tuple[str, int, int]:
    name, (start, end) = rng.choice(sorted(layout.regions().items()))
    return name, start, end


def flip(image: bytearray, layout: Layout, rng: random.Random) -> str:
    name, start, end = _span(layout, rng)
    bits = rng.randint(1, 3)
    spots = [(rng.randrange(start, end), rng.randrange(8)) for _ in range(bits)]
    for pos, bit in spots:
        image[pos] ^= 1 << bit
    return f"flip {name} " + ",".join(f"{pos}.{bit}" for pos, bit in spots)


def scribble(image: bytearray, layout: Layout, rng: random.Random) -> str:
    name, start, end = _span(layout, rng)
    pos = rng.randrange(start, end)
    run = bytes(rng.randrange(256) for _ in range(min(rng.randint(1, 16), end - pos)))
    image[pos : pos + len(run)] = run
    return f"scribble {name} {pos}+{len(run)}"


def zero_run(image: bytearray, layout: Layout, rng: random.Random) -> str:
    name, start, end = _span(layout, rng)
    pos = rng.randrange(start, end)
    length = min(rng.choice([1, 4, 20, 64, 512]), len(image) - pos)
    image[pos : pos + length] = bytes(length)
    return f"zero {name} {pos}+{length}"


def misplaced_block(image: bytearray, layout: Layout, rng: random.Random) -> str:
    blocks = len(image) // 512
    src, dst = rng.sample(range(blocks), 2) if blocks > 1 else (0, 0)
    image[dst * 512 : dst * 512 + 512] = image[src * 512 : src * 512 + 512]
    return f"block {src}->{dst}"


def truncate_boundary(image: bytearray, layout: Layout, rng: random.Random) -> str:
    at = rng.choice(layout.boundaries()) + rng.choice([-1, 0, 0, 1])
    del image[max(at, 0) :]
    return f"truncate at boundary {at}"


def truncate_random(image: bytearray, layout: Layout, rng: random.Random) -> str:
    at = rng.randrange(len(image))
    del image[at:]
    return f"truncate at {at}"


def extend(image: bytearray, layout: Layout, rng: random.Random) -> str:
    length = rng.choice([1, 20, 511, 512, 4096])
    junk = rng.random() < 0.5
    image += bytes(rng.randrange(256) for _ in range(length)) if junk else bytes(length)
    return f"extend {'junk' if junk else 'zeros'} +{length}"


def header_offset(image: bytearray, layout: Layout, rng: random.Random) -> str:
    value = rng.choice(
        [
            0,
            -1,
            PACK_OFFSET,
            layout.idx_offset - layout.block,
            layout.idx_offset + rng.choice([-1, 1, 20, 512, layout.block]),
            layout.size,
            (1 << 63) - 1,
            -(1 << 63),
            rng.randrange(layout.size),
        ]
    )
    struct.pack_into("<q", image, 20, value)
    return f"header IDX offset {value}"


def idx_offset(image: bytearray, layout: Layout, rng: random.Random) -> str:
    """Point one IDX entry somewhere else, then re-seal the IDX (or not) so its checksum does not help."""
    rows = [[oid, offset, crc] for oid, offset, crc in layout.index.entries()]
    i, j = rng.sample(range(len(rows)), 2)
    how = rng.choice(["swap", "copy", "inside", "past-end", "large", "zero"])
    if how == "swap":
        rows[i][1], rows[j][1] = rows[j][1], rows[i][1]
    elif how == "copy":
        rows[i][1] = rows[j][1]
    elif how == "inside":
        rows[i][1] += rng.randint(1, 8)
    elif how == "past-end":
        rows[i][1] = layout.pack_end - PACK_OFFSET + rng.randint(-20, 1 << 20)
    elif how == "large":
        rows[i][1] = LARGE_OFFSET_FLAG + rng.randrange(1 << 20)
    else:
        rows[i][1] = 0
    idx = bytearray(encode_index([tuple(r) for r in rows], layout.index.pack_checksum))  # type: ignore[misc]
    sealed = rng.random() < 0.8
    if not sealed:
        idx[-1] ^= 0xFF
    image[:] = _replace_idx(image, layout, bytes(idx))
    return f"idx offset {how} #{i} (j={j}){'' if sealed else ' unsealed'}"


def _varint_end(image: bytearray, pos: int) -> int:
    while image[pos] & 0x80:
        pos += 1
    return pos + 1


def entry_size(image: bytearray, layout: Layout, rng: random.Random) -> str:
    """Make one entry's declared size lie, in place (type and header length kept), then re-seal."""
    start, _, oid = rng.choice(layout.objects)
    pos = rng.randint(start, _varint_end(image, start) - 1)
    bits = 0x0F if pos == start else 0x7F  # the size bits of that header byte
    image[pos] = (image[pos] & ~bits & 0xFF) | rng.randrange(bits + 1)
    image[:] = reseal(image, layout)
    return f"entry size of {oid.hex()[:12]} byte {pos}"


def delta_base(image: bytearray, layout: Layout, rng: random.Random) -> str:
    """Point an OFS_DELTA at another base (itself, the PACK header, anywhere), in place, then re-seal."""
    deltas = [(s, oid) for s, _, oid in layout.objects if (image[s] >> 4) & 7 == OFS_DELTA]
    start, oid = rng.choice(deltas)
    pos = _varint_end(image, start)
    end = _varint_end(image, pos)
    wanted = ofs_distance(rng.choice([0, start - PACK_OFFSET, start - PACK_OFFSET - 12, 1]))
    if len(wanted) == end - pos:
        image[pos:end] = wanted
    else:  # random distance bits, continuation bits kept
        image[pos:end] = bytes((b & 0x80) | rng.randrange(128) for b in image[pos:end])
    image[:] = reseal(image, layout)
    return f"delta base of {oid.hex()[:12]} -> {bytes(image[pos:end]).hex()}"


def resealed_flip(image: bytearray, layout: Layout, rng: random.Random) -> str:
    start, end, oid = rng.choice(layout.objects)
    pos = rng.randrange(start, end)
    image[pos] ^= 1 << rng.randrange(8)
    image[:] = reseal(image, layout)
    return f"resealed flip in {oid.hex()[:12]} at {pos}"


def resealed_section(image: bytearray, layout: Layout, rng: random.Random) -> str:
    """Damage a section of the extension, then give it (and the table) the right checksums again."""
    table = layout.table
    assert table is not None, "the base image has an extension"
    section = rng.choice(table.sections)
    spots = [rng.randrange(section.offset, section.end) for _ in range(rng.randint(1, 4))]
    for pos in spots:
        image[pos] ^= 1 << rng.randrange(8)
    reseal_section(image, table, section)
    return f"resealed flip in the {section.name} section at " + ",".join(map(str, spots))


def renamed_refs_only(image: bytes, original: bytes, layout: Layout) -> bool:
    """Whether `image` differs from `original` only in the bytes of its refs section's names (and the
    table's checksums), re-sealed, each name still one the format allows (no NUL, no newline, none twice):
    a valid image, as ref names are what the image says and nothing vouches for them. Judged from the
    original's layout, not by docteur's parsers, so that a change docteur fails to check is not excused."""
    table = layout.table
    found = table.find(REFS) if table is not None else None
    if table is None or found is None or len(image) != len(original):
        return False
    names = [(a, b) for what, a, b in section_mutations.refs_fields(original, found) if " name #" in what]
    kept = [(0, table.offset), (table.offset + table.length, found.offset)]
    kept += zip([found.offset, *(b for _, b in names)], [*(a for a, _ in names), len(image)], strict=True)
    if any(image[a:b] != original[a:b] for a, b in kept):
        return False
    new = [image[a:b] for a, b in names]
    if any(b"\0" in n or b"\n" in n for n in new) or len(set(new)) != len(new):
        return False
    return image[table.offset : table.offset + table.length] == section_mutations.sealed_table(image, table)


def git_accepts(image: bytes, layout: Layout, scratch: Path) -> bool:
    """Whether `git verify-pack` accepts the PACK and IDX of an image laid out like the original.

    A re-sealed change can leave a valid image (e.g. a flip in the unused bits that end a deflate
    stream): git, an independent reader, says which.
    """
    pack, idx = scratch / "cut.pack", scratch / "cut.idx"
    pack.write_bytes(image[PACK_OFFSET : layout.pack_end])
    idx.write_bytes(image[layout.idx_offset : layout.idx_end])
    done = subprocess.run(
        ["git", "verify-pack", str(idx)], capture_output=True, env=GIT_ISOLATION, check=False
    )
    return done.returncode == 0


Family = Callable[[bytearray, Layout, random.Random], str]
FAMILIES: dict[str, Family] = {
    **{
        f.__name__: f
        for f in (
            flip,
            scribble,
            zero_run,
            misplaced_block,
            truncate_boundary,
            truncate_random,
            extend,
            header_offset,
            idx_offset,
            entry_size,
            delta_base,
            resealed_flip,
            resealed_section,
        )
    },
    **{name: family for name, (family, _) in section_mutations.FAMILIES.items()},
}


def families_of(image: bytes, layout: Layout) -> list[str]:
    """The families that apply to this image: those that need a section, only if it has that section,
    delta_base only if its PACK holds an OFS_DELTA."""
    kinds = {s.kind for s in layout.table.sections} if layout.table is not None else set()
    needs = {name: kind for name, (_, kind) in section_mutations.FAMILIES.items()}
    deltas = any((image[s] >> 4) & 7 == OFS_DELTA for s, _, _ in layout.objects)
    return [
        name
        for name in FAMILIES
        if needs.get(name, -1) in kinds | {-1}
        and (name != "resealed_section" or kinds)
        and (name != "delta_base" or deltas)
    ]


RESEALED = frozenset({"entry_size", "delta_base", "resealed_flip"})


def mutate(image: bytes, layout: Layout, seed: int, number: int) -> tuple[str, bytes]:
    """Case `number` of the campaign `seed`: ("family: what was done", mutated bytes). Families take turns."""
    rng = random.Random(f"{seed}:{number}")
    names = families_of(image, layout)
    name = names[number % len(names)]
    mutated = bytearray(image)
    what = FAMILIES[name](mutated, layout, rng)
    return f"{name}: {what}", bytes(mutated)
