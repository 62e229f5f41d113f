"""docteur patch: rebuild NEW from OLD and an update, bit for bit, or write nothing.

Before anything is written, the update's digest is checked (a truncated or altered file is refused) and
OLD's bytes are hashed against the SHA-256 the update names (the wrong base is refused, and OLD is only
ever read). NEW is streamed into a temporary file beside the target, hashed as it is written, and renamed
into place only once it hashes to the SHA-256 the update names, after an fsync: a SIGKILL leaves OLD,
nothing, or the complete NEW; the temporary file of a killed patch is removed by the next one. A block
device as target is written in place with its header last, so that until the end it holds no image.
"""

from __future__ import annotations

import errno
import hashlib
import os
import struct
import zlib
from array import array
from collections import namedtuple
from pathlib import Path

from docteur.bytesource import chunks
from docteur.bytesource.mapped import MappedFile
from docteur.bytesource.memory import InMemory
from docteur.errors import CorruptImageError, UpdateError
from docteur.git.objects import OFS_DELTA, REF_DELTA, TYPE_NAMES, object_id
from docteur.idx.reader import PackIndex
from docteur.idx.writer import encode_index
from docteur.image.format import PACK_OFFSET, encode_header
from docteur.pack.reader import PACK_MAGIC, PackReader
from docteur.pack.writer import ofs_distance
from docteur.scratch import create_beside, publish, remove_abandoned
from docteur.sections.build import build_sections
from docteur.sections.paths import MAX_ROOTS
from docteur.sections.table import MAX_SECTIONS, Section, encode_table, place
from docteur.update import binary, carry
from docteur.update.format import (
    CARRIED,
    COPY,
    DELTA,
    DIGEST_SIZE,
    END,
    ENTRY_HEADER_MAX,
    INLINE_MAX,
    LITERAL,
    RAW,
    RECOMPUTED,
    REDELTA,
    BodyReader,
    Header,
    Window,
    digest_of,
    has_id,
    read_header,
    unzigzag,
)
from docteur.update.parts import ImageParts, is_device, same_file, typesize_length

# Not `from typing import TYPE_CHECKING` (nor dataclasses, nor tempfile): patch's start-up on a device counts.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import BinaryIO

_ZEROS = bytes(1 << 16)
TEMP_INFIX = ".patch-"


class Patched(namedtuple("Patched", "image commit size")):
    __slots__ = ()
    image: str
    commit: str  # hex
    size: int


def entry_fields(header: bytes) -> tuple[int, int]:
    """(type, size) of a shipped entry header, which must be one whole, well-formed header."""
    if not header:
        raise UpdateError("an update entry has an empty header")
    byte = header[0]
    kind, size, shift, pos = (byte >> 4) & 7, byte & 0x0F, 4, 1
    while byte & 0x80:
        if pos >= len(header) or shift > 60:
            raise UpdateError("an update entry has a malformed header")
        byte = header[pos]
        size |= (byte & 0x7F) << shift
        shift += 7
        pos += 1
    if kind == OFS_DELTA:
        while pos < len(header) and header[pos] & 0x80:
            pos += 1
        pos += 1
    elif kind == REF_DELTA:
        pos += 20
    elif kind not in TYPE_NAMES:
        raise UpdateError(f"an update entry has unknown type {kind}")
    if pos != len(header):
        raise UpdateError("an update entry's header has the wrong length")
    return kind, size


class _Output:
    """The new image as it is written: position, SHA-256 of its data (padding after `hash_end` excluded)
    and the declared size as a hard bound. With `head_last`, the first bytes are written as zeros and
    the true header only by `finish` (a device holds no image until the end)."""

    def __init__(self, file: BinaryIO, size: int, hash_end: int, head_last: bool) -> None:
        self.file = file
        self.pos = 0
        self.size = size
        self.hash_end = hash_end
        self.sha = hashlib.sha256()
        self.head_last = head_last
        self.head = b""

    def write(self, data: bytes | memoryview) -> None:
        end = self.pos + len(data)
        if end > self.size:
            raise UpdateError("the update writes past the size it declares for NEW")
        if self.pos < self.hash_end:
            self.sha.update(data if end <= self.hash_end else data[: self.hash_end - self.pos])
        if self.head_last and self.pos == 0:
            self.head = bytes(data)
            data = bytes(len(data))
        self.file.write(data)
        self.pos = end

    def pad_to(self, at: int) -> None:
        if at < self.pos:
            raise UpdateError("the update's layout overlaps itself")
        while self.pos < at:
            self.write(_ZEROS[: min(len(_ZEROS), at - self.pos)])


class _Rebuild:
    """NEW's bytes from OLD (already checked) and the update's body, written to `out` in order."""

    def __init__(self, header: Header, old: ImageParts, body: BodyReader, out: _Output, path: str) -> None:
        self.h = header
        self.old = old
        self.body = body
        self.out = out
        self.path = path  # where `out` lies, read back for the path index
        self.rows: list[tuple[bytes, int, int]] = []  # (id, PACK offset, CRC32) of NEW's entries
        self.new_offset_of = array("q", [-1]) * old.count  # OLD ordinal -> NEW offset of that object
        self.used = bytearray(old.count)  # OLD entries copied already: each at most once
        self.pack_pos = 0
        self.pack_sha = hashlib.sha1()
        self.pending: tuple[int, int] | None = None  # OLD PACK bytes to copy as they are: (start, end)
        self.next_copy = 0

    # -- the PACK -----------------------------------------------------------------------------------------

    def _flush(self) -> None:
        if self.pending is not None:
            start, end = self.pending
            self.pending = None
            for piece in chunks(self.old.source, PACK_OFFSET + start, end - start):
                self.pack_sha.update(piece)
                self.out.write(piece)

    def _pack_write(self, data: bytes | memoryview) -> None:
        self._flush()
        self._budget(len(data))
        self.pack_sha.update(data)
        self.out.write(data)
        self.pack_pos += len(data)

    def _budget(self, n: int) -> None:
        if self.pack_pos + n > self.h.pack_length - 20:
            raise UpdateError("the update's entries run past the PACK length it declares")

    def _record(self, oid: bytes, offset: int, crc: int, k: int | None = None) -> None:
        """NEW's entry at `offset`: its IDX row, and where the object of OLD's entry `k` (looked up
        when not given) now lies, for the OFS distances of the copies that follow."""
        if len(self.rows) >= self.h.objects:
            raise UpdateError("the update holds more entries than it declares")
        self.rows.append((oid, offset, crc))
        if k is None:
            k = self.old.ordinal_of(oid)
        if k >= 0 and self.new_offset_of[k] < 0:
            self.new_offset_of[k] = offset

    def _copy(self) -> None:
        old = self.old
        first = self.next_copy + unzigzag(self.body.varint())
        count = self.body.varint(old.count)
        if not count or first < 0 or first + count > old.count:
            raise UpdateError("the update copies entries OLD does not have")
        self.next_copy = first + count
        for k in range(first, first + count):
            if self.used[k]:
                raise UpdateError("the update copies one OLD entry twice")
            self.used[k] = 1
            offset, end = old.offsets[k], old.end_of(k)
            at = self.pack_pos
            head = old.pack.read(offset, min(ENTRY_HEADER_MAX, end - offset))
            crc = -1
            if (head[0] >> 4) & 7 == OFS_DELTA:
                _, _, data_at, base = old.pack.entry_header(offset, head)
                new_base = self.new_offset_of[old.ordinal_at(base)]  # type: ignore[arg-type]
                if new_base < 0:
                    raise UpdateError("the update copies a delta before its base")
                new_head = bytes(head[: typesize_length(head)]) + ofs_distance(at - new_base)
                if new_head != head[: data_at - offset]:
                    data = old.pack.read(data_at, end - data_at)
                    crc = zlib.crc32(data, zlib.crc32(new_head))
                    self._pack_write(new_head)
                    self._pack_write(data)
            if crc < 0:  # the entry as OLD has it
                crc = old.crc(k)
                self._budget(end - offset)
                if self.pending is not None and self.pending[1] == offset:
                    self.pending = (self.pending[0], end)
                else:
                    self._flush()
                    self.pending = (offset, end)
                self.pack_pos += end - offset
            self._record(old.oid(k), at, crc, k)

    def _entry_header(self) -> tuple[bytes, int, int, bytes | None]:
        header = self.body.read(self.body.varint(ENTRY_HEADER_MAX))
        kind, size = entry_fields(header)
        oid = self.body.read(20) if has_id(header) else None
        return header, kind, size, oid

    def _raw(self) -> None:
        header, kind, size, oid = self._entry_header()
        length = self.body.varint(self.h.pack_length)
        self._budget(len(header) + length)
        at = self.pack_pos
        self._pack_write(header)
        crc = zlib.crc32(header)
        inflater = zlib.decompressobj() if oid is None else None
        sha = hashlib.sha1(b"%s %d\0" % (TYPE_NAMES.get(kind, b""), size))
        got = 0
        for piece in self.body.chunks(length):
            self._pack_write(piece)
            crc = zlib.crc32(piece, crc)
            pending = piece
            while inflater is not None and pending:
                try:
                    data = inflater.decompress(pending, size + 1 - got)
                except zlib.error as e:
                    raise UpdateError(f"a shipped entry does not inflate: {e}") from None
                got += len(data)
                if got > size:
                    raise UpdateError("a shipped entry inflates to more than its header says")
                sha.update(data)
                pending = inflater.unconsumed_tail
        if inflater is not None:
            if not inflater.eof or inflater.unused_data or got != size:
                raise UpdateError("a shipped entry does not inflate to the size its header says")
            oid = sha.digest()
        assert oid is not None
        self._record(oid, at, crc)

    def _payload(self, tag: int) -> None:
        level = self.body.byte()
        if level > 9:
            raise UpdateError(f"an update entry names zlib level {level}")
        header, kind, size, oid = self._entry_header()
        if size > INLINE_MAX:
            raise UpdateError(f"an update entry declares {size} bytes inline, over {INLINE_MAX}")
        crc = self.body.u32()
        if tag == LITERAL:
            payload = self.body.read(size)
        else:
            base = self._base(tag, self.body.varint(self.old.count - 1))
            payload = binary.decode(base, self.body.read(self.body.varint(2 * INLINE_MAX)), size)
        data = binary.deflate(payload, level)
        if zlib.crc32(data, zlib.crc32(header)) != crc:
            raise UpdateError(
                "deflating a shipped entry does not give NEW's bytes: this machine's zlib "
                f"({zlib.ZLIB_RUNTIME_VERSION}) is not the one the update was made with, "
                "or the update is damaged"
            )
        at = self.pack_pos
        self._pack_write(header)
        self._pack_write(data)
        self._record(oid if oid is not None else object_id(kind, payload), at, crc)

    def _base(self, tag: int, k: int) -> bytes:
        """The dictionary of a binary delta: OLD's object at ordinal `k` (DELTA) or its entry's inflated
        data (REDELTA), never more than INLINE_MAX bytes."""
        pack, offset = self.old.pack, self.old.offsets[k]
        if tag == DELTA:
            if pack.object_size(offset) > INLINE_MAX:
                raise UpdateError("a binary delta names an OLD object too large to be its base")
            return pack.object_at(offset, keep=False)[1]
        _, size, data_at, _ = pack.entry_header(offset)
        if size > INLINE_MAX:
            raise UpdateError("a binary delta names an OLD entry too large to be its base")
        return pack.inflate(data_at, size, self.old.end_of(k))

    def pack(self) -> bytes:
        self.out.write(encode_header(self.h.new_commit, self.h.stored_idx_offset))
        self._pack_write(PACK_MAGIC + struct.pack(">II", 2, self.h.objects))
        handlers = {COPY: self._copy, RAW: self._raw}
        while (op := self.body.byte()) != END:
            if op in handlers:
                handlers[op]()
            elif op in (LITERAL, DELTA, REDELTA):
                self._payload(op)
            else:
                raise UpdateError(f"unknown operation {op} in the update's entries")
        self._flush()
        if len(self.rows) != self.h.objects or self.pack_pos != self.h.pack_length - 20:
            raise UpdateError("the update's entries do not add up to the PACK it declares")
        checksum = self.pack_sha.digest()
        self.out.write(checksum)
        return checksum

    # -- the IDX and the sections ---------------------------------------------------------------------------

    def idx(self, checksum: bytes) -> bytes:
        mode = self.body.byte()
        if mode == RECOMPUTED:
            idx = encode_index(self.rows, checksum)
        elif mode == CARRIED:
            idx = self.body.read(self.h.idx_length)
        else:
            raise UpdateError(f"unknown IDX mode {mode}")
        self.rows = []
        if len(idx) != self.h.idx_length:
            raise UpdateError("the rebuilt IDX does not have the length the update declares")
        self.out.pad_to(self.h.idx_offset)
        self.out.write(idx)
        return idx

    def sections(self, idx: bytes) -> None:
        h, out, idx_end = self.h, self.out, self.h.idx_offset + self.h.idx_length
        if not self.body.byte():
            if h.new_end != idx_end:
                raise UpdateError("the update's layout does not end where it declares")
            return
        roots = [self.body.read(20) for _ in range(self.body.varint(MAX_ROOTS))] or [h.new_commit]
        count = self.body.varint(MAX_SECTIONS)
        specs: list[tuple[int, int, int, int, bytes | None]] = []  # kind, flags, mode, length, sha
        built: dict[int, bytes] | None = None
        recomputed: dict[int, bytes] = {}
        for _ in range(count):
            kind, flags, mode = self.body.varint(0xFFFFFFFF), self.body.varint(0xFFFFFFFF), self.body.byte()
            if mode == RECOMPUTED:
                if built is None:
                    built = self._built(idx, roots)
                if kind not in built:
                    raise UpdateError(f"the update asks to recompute section kind {kind}, which cannot be")
                recomputed[kind] = built[kind]
                specs.append((kind, flags, mode, len(built[kind]), hashlib.sha256(built[kind]).digest()))
            elif mode == CARRIED:
                specs.append((kind, flags, mode, self.body.varint(h.new_size), self.body.read(32)))
            else:
                raise UpdateError(f"unknown section mode {mode}")
        table_at, offsets, size = place(idx_end, h.block_size, [s[3] for s in specs])
        table = encode_table(
            h.block_size,
            [Section(k, f, at, n, sha) for (k, f, _, n, sha), at in zip(specs, offsets, strict=True)],
        )
        data_end = max([table_at + len(table), *(at + s[3] for s, at in zip(specs, offsets, strict=True))])
        if (data_end, size) != (h.new_end, h.new_size):
            raise UpdateError("the update's sections do not end where it declares")
        out.pad_to(table_at)
        out.write(table)
        old_table = self.old.table
        for (kind, _, mode, length, sha), at in zip(specs, offsets, strict=True):
            out.pad_to(at)
            if mode == RECOMPUTED:
                out.write(recomputed[kind])
                continue
            old_section = old_table.find(kind) if old_table is not None else None
            carry.apply(self.body, length, sha or b"", self.old.source, old_section, out.write)

    def _built(self, idx: bytes, roots: list[bytes]) -> dict[int, bytes]:
        """The sections NEW's PACK and the indexed commits give, read back from what was just written."""
        self.out.file.flush()
        try:
            with MappedFile(self.path) as source:
                reader = PackReader(
                    source, PackIndex(InMemory(idx)), at=PACK_OFFSET, length=self.h.pack_length
                )
                return {s.kind: s.data for s in build_sections(reader, roots, [])}
        except CorruptImageError as e:
            raise UpdateError(f"the update does not rebuild a readable image: {e}") from None

    def run(self) -> None:
        idx = self.idx(self.pack())
        self.sections(idx)
        self.body.finish()
        self.out.pad_to(self.h.new_size)
        if self.out.sha.digest() != self.h.new_sha256:
            raise UpdateError("the rebuilt image does not hash to the SHA-256 the update names for NEW")


def _check_old(old: str | os.PathLike[str], h: Header) -> None:
    """OLD must be the image the update names: its commit first (the likely mistake, named), then its
    bytes up to its data end (padding after it, as on a device, does not count)."""
    with MappedFile(old) as source:
        name = source.name
        found = bytes(source.read(0, 20))
        if found != h.old_commit:
            raise UpdateError(
                f"{name} holds commit {found.hex()}, but this update applies to commit {h.old_commit.hex()}"
            )
        sha = hashlib.sha256()
        for piece in chunks(source, 0, h.old_end):
            sha.update(piece)
        if source.size < h.old_end or sha.digest() != h.old_sha256:
            raise UpdateError(
                f"{name} is not the image this update applies to (commit {h.old_commit.hex()}, "
                "but other bytes)"
            )


def _free_space_check(directory: Path, needed: int, target: Path) -> None:
    st = os.statvfs(directory)
    if st.f_bavail * st.f_frsize < needed:
        raise OSError(errno.ENOSPC, "No space left on device", str(target))


def _into_file(h: Header, old: ImageParts, body: BodyReader, out: Path) -> None:
    if out.is_dir():
        raise IsADirectoryError(errno.EISDIR, "Is a directory", str(out))
    if out.exists() and not out.is_file():
        raise OSError(errno.EINVAL, "not a regular file or a block device", str(out))
    directory = out.parent if str(out.parent) else Path(".")
    prefix = f".{out.name}{TEMP_INFIX}"
    remove_abandoned(directory, prefix)
    _free_space_check(directory, h.new_size, out)
    fd, tmp = create_beside(out, TEMP_INFIX)
    try:
        with os.fdopen(fd, "wb") as f:
            _Rebuild(h, old, body, _Output(f, h.new_size, h.new_end, False), tmp).run()
            f.flush()
            os.fsync(f.fileno())
        publish(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _into_device(h: Header, old: ImageParts, body: BodyReader, out: Path) -> None:
    with open(out, "r+b") as f:
        size = f.seek(0, os.SEEK_END)
        if size < h.new_size:
            raise OSError(errno.ENOSPC, f"the device holds {size} bytes, NEW needs {h.new_size}", str(out))
        f.seek(0)
        output = _Output(f, h.new_size, h.new_end, True)
        _Rebuild(h, old, body, output, str(out)).run()
        f.flush()
        os.fsync(f.fileno())
        f.seek(0)
        f.write(output.head)
        f.flush()
        os.fsync(f.fileno())


def check_update(f: BinaryIO) -> tuple[Header, int, int]:
    """The update's header, where its body starts and ends; UpdateError if the file is truncated or
    altered (its digest)."""
    header, body_at = read_header(f)
    size = f.seek(0, os.SEEK_END)
    end = size - DIGEST_SIZE
    if end < body_at:
        raise UpdateError("update is truncated")
    digest = digest_of(f, end)
    if f.read(DIGEST_SIZE) != digest:
        raise UpdateError("update is damaged or truncated (its digest does not match)")
    return header, body_at, end


def patch(
    old: str | os.PathLike[str], update: str | os.PathLike[str], out: str | os.PathLike[str]
) -> Patched:
    """Write NEW, which `update` describes against `old`, to `out` (a file replaced atomically, or a block
    device written in place); `out` may be `old` itself when it is a regular file."""
    target = Path(out)
    device = is_device(target)
    if device and same_file(old, target):
        raise UpdateError(f"{target} is OLD itself: a device cannot be patched in place")
    with open(update, "rb") as f:
        header, body_at, body_end = check_update(f)
        _check_old(old, header)
        with ImageParts(old) as base:
            body = BodyReader(Window(f, body_at, body_end))
            (_into_device if device else _into_file)(header, base, body, target)
    return Patched(str(target), header.new_commit.hex(), header.new_size)
