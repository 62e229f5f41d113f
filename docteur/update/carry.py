"""Sections NEW's PACK cannot give back (zstd frames, a dictionary...), carried by the update as ranges
copied from OLD's section of the same kind and literal bytes.

A section is cut into extents: a kind registers a chunker that cuts it where its own structure does (a
FRAMES section at its frames, so that an unchanged file's frame is copied and a changed one shipped);
any other kind is cut into fixed blocks. An extent of NEW that OLD's section holds byte for byte is
copied, and copies that follow each other in both are one range.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator

from docteur.bytesource import ByteSource, chunks
from docteur.errors import UpdateError
from docteur.sections import FRAMES, PATHS, paths
from docteur.sections.table import Section
from docteur.update.format import SCOPY, SEND, SLIT, BodyReader, BodyWriter, varint
from docteur.zstd.frames import FramesReader

# (source, section offset, section length) -> (start, length) extents relative to the section, in
# order, covering it exactly.
Chunker = Callable[[ByteSource, int, int], Iterator[tuple[int, int]]]
CHUNKERS: dict[int, Chunker] = {}
BLOCK = 1 << 16


def fixed_blocks(source: ByteSource, offset: int, length: int) -> Iterator[tuple[int, int]]:
    for at in range(0, length, BLOCK):
        yield at, min(BLOCK, length - at)


def frame_extents(source: ByteSource, offset: int, length: int) -> Iterator[tuple[int, int]]:
    """A FRAMES section cut at its frames: its header and table, then each frame."""
    frames = FramesReader(source, offset, length)
    yield 0, frames.offsets[0] if frames.count else length
    for i in range(frames.count):
        yield frames.offsets[i], frames.compressed[i]


def record_extents(source: ByteSource, offset: int, length: int) -> Iterator[tuple[int, int]]:
    """A paths section (carried when the PACK cannot give it back: a zstd image's) cut at its records:
    its header, roots and commits, then each record, so that an unchanged folder's record is found in
    OLD's section wherever the ones before it moved it."""
    head = bytes(source.read(offset, paths.HEAD.size))
    count = paths.HEAD.unpack(head)[3]
    roots = [
        paths.ROOT.unpack(bytes(source.read(offset + paths.HEAD.size + paths.ROOT.size * i, paths.ROOT.size)))
        for i in range(count)
    ]
    at = paths.HEAD.size + paths.ROOT.size * count + sum(root[2] for root in roots)
    yield 0, at
    while at < length:
        frame, subdirs = paths.RECORD_HEAD.unpack(bytes(source.read(offset + at, paths.RECORD_HEAD.size)))
        size = min(paths.RECORD_HEAD.size + paths.POINTER.size * subdirs + frame, length - at)
        yield at, size
        at += size


CHUNKERS[FRAMES] = frame_extents
CHUNKERS[PATHS] = record_extents


def _extents(kind: int, source: ByteSource, section: Section) -> Iterator[tuple[int, int]]:
    return CHUNKERS.get(kind, fixed_blocks)(source, section.offset, section.length)


def _key(data: bytes | memoryview) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


def encode(
    out: BodyWriter, new: ByteSource, section: Section, old: ByteSource | None, old_section: Section | None
) -> int:
    """Write `section` of NEW as copies from `old_section` and literals; return the bytes copied."""
    known: dict[bytes, int] = {}
    if old is not None and old_section is not None:
        for start, length in _extents(section.kind, old, old_section):
            known.setdefault(_key(old.read(old_section.offset + start, length)), start)
    copied = 0
    pending: tuple[int, int] | None = None  # a copy not yet written: (OLD offset, length)

    def flush() -> None:
        nonlocal pending
        if pending is not None:
            out.write(bytes([SCOPY]), varint(pending[0]), varint(pending[1]))
            pending = None

    for start, length in _extents(section.kind, new, section):
        data = new.read(section.offset + start, length)
        at = known.get(_key(data))
        if (
            at is not None
            and old is not None
            and old_section is not None
            and bytes(old.read(old_section.offset + at, length)) == bytes(data)
        ):
            copied += length
            if pending is not None and pending[0] + pending[1] == at:
                pending = (pending[0], pending[1] + length)
            else:
                flush()
                pending = (at, length)
            continue
        flush()
        out.write(bytes([SLIT]), varint(length), data)
    flush()
    out.write(bytes([SEND]))
    return copied


def apply(
    body: BodyReader,
    length: int,
    sha256: bytes,
    old: ByteSource,
    old_section: Section | None,
    write: Callable[[bytes | memoryview], None],
) -> None:
    """Rebuild a carried section of `length` bytes from the body's operations; it must hash to `sha256`."""
    h = hashlib.sha256()
    left = length
    while True:
        op = body.byte()
        if op == SEND:
            break
        if op == SCOPY:
            at, size = body.varint(), body.varint(left)
            if not size or old_section is None or at + size > old_section.length:
                raise UpdateError("a carried section copies bytes OLD's section does not have")
            pieces: Iterator[bytes | memoryview] = chunks(old, old_section.offset + at, size)
        elif op == SLIT:
            size = body.varint(left)
            if not size:
                raise UpdateError("a carried section has an empty literal")
            pieces = body.chunks(size)
        else:
            raise UpdateError(f"unknown operation {op} in a carried section")
        for piece in pieces:
            left -= len(piece)
            h.update(piece)
            write(piece)
    if left or h.digest() != sha256:
        raise UpdateError("a carried section does not rebuild to the section NEW holds")
