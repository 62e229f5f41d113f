"""docteur delta: the update that turns OLD into NEW, computed at the level of PACK entries.

NEW's entries that OLD holds as they are (the same object, compressed data and delta base) are copied,
runs of them as one operation; the others are shipped, as a binary delta against an object OLD holds
(the same object in another representation, or what OLD has at the same path) when that is smaller,
for the receiver to deflate back to NEW's exact bytes, or as they are when deflating would not give
them back. The update is then applied here, to a scratch file, and written only if that rebuilds NEW
bit for bit.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zlib
from array import array
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from docteur.errors import CorruptImageError, UpdateError
from docteur.git.objects import MODE_DIR, OFS_DELTA, REF_DELTA
from docteur.idx.writer import encode_index
from docteur.image.format import PACK_OFFSET
from docteur.pack.writer import ofs_distance
from docteur.scratch import create_beside, publish, remove_abandoned
from docteur.sections import REFS, refs
from docteur.sections.build import build_sections
from docteur.sections.table import Section
from docteur.update import binary, carry
from docteur.update.format import (
    CARRIED,
    DELTA,
    END,
    INLINE_MAX,
    LITERAL,
    RAW,
    RECOMPUTED,
    REDELTA,
    BodyWriter,
    Header,
    compressor,
    varint,
)
from docteur.update.parts import ImageParts, typesize_length

TEMP_INFIX = ".delta-"
SCRATCH_PREFIX = "docteur-delta-"
_DELTA_KINDS = (OFS_DELTA, REF_DELTA)


@dataclass(frozen=True)
class Made:
    update: str
    size: int
    old_commit: str
    new_commit: str
    objects: int
    copied_entries: int
    copied_bytes: int  # NEW PACK bytes copied from OLD
    shipped_entries: int
    shipped_bytes: int  # NEW PACK bytes of the shipped entries (what the update ships them as is `size`)


def _same_entry(old: ImageParts, k: int, new: ImageParts, j: int) -> bool:
    """Whether NEW's entry `j` is OLD's entry `k` (which holds the same object) re-encoded at most in its
    OFS distance: the same type and size bytes, the same delta base object, the same compressed data."""
    o_at, n_at = old.offsets[k], new.offsets[j]
    o_end, n_end = old.end_of(k), new.end_of(j)
    o_kind, _, o_data, o_base = old.pack.entry_header(o_at)
    n_kind, _, n_data, n_base = new.pack.entry_header(n_at)
    if o_kind != n_kind or o_end - o_data != n_end - n_data:
        return False
    o_head = bytes(old.pack.read(o_at, o_data - o_at))
    n_head = bytes(new.pack.read(n_at, n_data - n_at))
    if n_kind == OFS_DELTA:
        assert isinstance(o_base, int) and isinstance(n_base, int)
        tl = typesize_length(n_head)
        if (
            o_head[:tl] != n_head[:tl]
            or n_head[tl:] != ofs_distance(n_at - n_base)  # the receiver writes git's spelling
            or old.oid(old.ordinal_at(o_base)) != new.oid(new.ordinal_at(n_base))
        ):
            return False
    elif o_head != n_head:  # a REF_DELTA's header holds its base's id
        return False
    return old.pack.read(o_data, o_end - o_data) == new.pack.read(n_data, n_end - n_data)


def _match(old: ImageParts, new: ImageParts) -> array[int]:
    """For each NEW ordinal, the OLD ordinal it is copied from, or -1 (shipped)."""
    copied = array("q", [-1]) * new.count
    for j in range(new.count):
        k = old.ordinal_of(new.oid(j))
        if k >= 0 and _same_entry(old, k, new, j):
            copied[j] = k
    return copied


def _neighbours(old: ImageParts, new: ImageParts, shipped: list[int]) -> dict[int, int]:
    """For shipped NEW ordinals, the OLD ordinal of what OLD holds at the same path (the last version of
    a changed file or directory; OLD's commit for NEW's): the likely base of a small binary delta."""
    import docteur

    wanted = {new.oid(j): j for j in shipped}
    found: dict[bytes, str] = {}
    with docteur.open(new.path) as img:
        root = bytes.fromhex(img.tree)
        if root in wanted:
            found[root] = ""
        pending = [""]
        while pending and len(found) < len(wanted):
            directory = pending.pop()
            for name, st in img.scandir(directory):
                path = f"{directory}/{name}" if directory else name
                oid = bytes.fromhex(st.oid)
                if oid in wanted:
                    found.setdefault(oid, path)
                if st.mode == MODE_DIR:
                    pending.append(path)
    out: dict[int, int] = {}
    if new.commit in wanted and old.ordinal_of(old.commit) >= 0:
        out[wanted[new.commit]] = old.ordinal_of(old.commit)
    with docteur.open(old.path) as img:
        for oid, path in found.items():
            try:
                there = img.stat(path).oid if path else img.tree
            except (FileNotFoundError, NotADirectoryError):
                continue
            k = old.ordinal_of(bytes.fromhex(there))
            if k >= 0:
                out[wanted[oid]] = k
    return out


class _Hashing:
    """A file written through a BLAKE2b-128, for the update's digest."""

    def __init__(self, file: BinaryIO) -> None:
        self.file = file
        self.hash = hashlib.blake2b(digest_size=16)

    def write(self, data: bytes | memoryview) -> int:
        self.hash.update(data)
        return self.file.write(data)

    def flush(self) -> None:
        self.file.flush()


class _Encoder:
    def __init__(self, old: ImageParts, new: ImageParts) -> None:
        self.old = old
        self.new = new
        self.copied = _match(old, new)
        shipped = [j for j in range(new.count) if self.copied[j] < 0]
        self.neighbours = _neighbours(old, new, shipped) if shipped else {}
        self.copied_bytes = sum(
            new.end_of(j) - new.offsets[j] for j in range(new.count) if self.copied[j] >= 0
        )
        self.copied_entries = new.count - len(shipped)
        self._plan_rebuilt()

    def header(self) -> Header:
        old, new = self.old, self.new
        block_size, size = new.layout()
        tail = bytes(new.source.read(new.data_end, size - new.data_end))
        if tail.strip(b"\0"):
            raise UpdateError(f"{new.path}: bytes after its data end are not zeros: it cannot be rebuilt")
        p = new.placement
        return Header(
            old.commit,
            old.data_end,
            old.sha256(),
            new.commit,
            new.data_end,
            new.sha256(),
            size,
            block_size,
            p.pack_length,
            new.count,
            p.idx_offset,
            p.stored_idx_offset,
            p.idx_length,
            self.copied_entries,
            self.copied_bytes,
        )

    def body(self, out: BodyWriter) -> None:
        new = self.new
        run: tuple[int, int] | None = None  # (first OLD ordinal, count) not yet written
        for j in range(new.count):
            k = self.copied[j]
            if k >= 0:
                if run is not None and run[0] + run[1] == k:
                    run = (run[0], run[1] + 1)
                    continue
                if run is not None:
                    out.copy(*run)
                run = (k, 1)
                continue
            if run is not None:
                out.copy(*run)
                run = None
            self._ship(out, j)
        if run is not None:
            out.copy(*run)
        out.write(bytes([END]))
        self._idx(out)
        self._sections(out)

    def _ship(self, out: BodyWriter, j: int) -> None:
        new = self.new
        at, end = new.offsets[j], new.end_of(j)
        kind, size, data_at, _ = new.pack.entry_header(at)
        header = bytes(new.pack.read(at, data_at - at))
        oid = new.oid(j)
        compressed = new.pack.read(data_at, end - data_at)
        level = None
        if size <= INLINE_MAX and end - data_at <= INLINE_MAX:
            payload = new.pack.inflate(data_at, size, end)
            level = binary.deflate_level(payload, compressed)
        if level is None:  # too large to hold, or deflated some other way: the entry as it is
            out.entry_start(RAW, header, oid)
            out.write(varint(end - data_at), compressed)
            return
        best: tuple[int, int, int, bytes] = (binary.literal_cost(payload), LITERAL, -1, b"")
        for tag, k in self._bases(j, kind):
            base = self._base(tag, k)
            if base is not None:
                frame = binary.encode(base, payload)
                cost = len(frame) + len(varint(k)) + len(varint(len(frame)))
                if cost < best[0]:
                    best = (cost, tag, k, frame)
        _, tag, k, frame = best
        out.entry_start(tag, header, oid, level)
        out.write(zlib.crc32(compressed, zlib.crc32(header)).to_bytes(4, "little"))
        if tag == LITERAL:
            out.write(payload)
        else:
            out.write(varint(k), varint(len(frame)), frame)

    def _bases(self, j: int, kind: int) -> list[tuple[int, int]]:
        """Candidate dictionaries: OLD's entry of the same object (stored otherwise) and what OLD has at
        the same path, as objects; for a delta entry, their entries' instructions too."""
        found: list[tuple[int, int]] = []
        for k in (self.old.ordinal_of(self.new.oid(j)), self.neighbours.get(j, -1)):
            if k < 0 or any(k == seen for _, seen in found):
                continue
            found.append((DELTA, k))
            if kind in _DELTA_KINDS:
                found.append((REDELTA, k))
        return found

    def _base(self, tag: int, k: int) -> bytes | None:
        pack, at = self.old.pack, self.old.offsets[k]
        if tag == DELTA:
            if pack.object_size(at) > INLINE_MAX:
                return None
            return pack.object_at(at, keep=False)[1]
        _, size, data_at, _ = pack.entry_header(at)
        return None if size > INLINE_MAX else pack.inflate(data_at, size, self.old.end_of(k))

    def _plan_rebuilt(self) -> None:
        """Decide, before the body's compressor holds its memory, what the receiver may recompute: the
        IDX when it is the one git writes for this PACK, and each section that build_sections gives back
        byte for byte; the rest is carried."""
        new = self.new
        p = new.placement
        idx = bytes(new.source.read(p.idx_offset, p.idx_length))
        checksum = bytes(new.source.read(PACK_OFFSET + p.pack_length - 20, 20))
        self.idx_recomputed = encode_index(new.index.entries(), checksum) == idx
        del idx
        self.sections: list[tuple[Section, bool]] = []  # (section, recomputed)
        self.roots = [new.commit]  # the commits the path index indexes, in the order make gave them
        if new.table is not None:
            found = new.table.find(REFS)
            named = refs.decode(bytes(new.source.read(found.offset, found.length))) if found else []
            self.roots = list(dict.fromkeys(commit for _, commit in named)) or self.roots
            # What the receiver rebuilds from the PACK and the roots alone (not the refs' names).
            try:
                built = {s.kind: s for s in build_sections(new.pack, self.roots, [])}
            except CorruptImageError:
                built = {}  # a zstd image: its files are in its frames, which the PACK cannot locate
            for s in new.table.sections:
                mine = built.get(s.kind)
                same = mine is not None and mine.flags == s.flags
                self.sections.append((s, same and mine.data == new.source.read(s.offset, s.length)))

    def _idx(self, out: BodyWriter) -> None:
        if self.idx_recomputed:
            out.write(bytes([RECOMPUTED]))
        else:  # not the IDX git writes for this PACK: shipped as it is
            p = self.new.placement
            out.write(bytes([CARRIED]), self.new.source.read(p.idx_offset, p.idx_length))

    def _sections(self, out: BodyWriter) -> None:
        new, old = self.new, self.old
        if new.table is None:
            out.write(b"\0")
            return
        explicit = self.roots != [new.commit]
        out.write(b"\1", varint(len(self.roots) if explicit else 0), *(self.roots if explicit else []))
        out.write(varint(len(self.sections)))
        for s, recomputed in self.sections:
            out.write(varint(s.kind), varint(s.flags))
            if recomputed:
                out.write(bytes([RECOMPUTED]))
            else:
                out.write(bytes([CARRIED]), varint(s.length), s.checksum)
        old_table = old.table
        for s, recomputed in self.sections:
            if not recomputed:
                old_section = old_table.find(s.kind) if old_table is not None else None
                carry.encode(out, new.source, s, old.source, old_section)


def _check_by_patch(old: str | os.PathLike[str], update: str, out: Path, new: str | os.PathLike[str]) -> None:
    """Apply the update as a device would, with `docteur patch` in a process of its own: the update is
    written only if that rebuilds NEW, and delta's peak memory is the larger of the two, not their sum."""
    import docteur

    root = str(Path(docteur.__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-c", "from docteur.cli.fast import main; main()", "patch"]
    done = subprocess.run(
        [*command, os.fspath(old), update, "-o", str(out)], capture_output=True, env=env, check=False
    )
    if done.returncode != 0:
        lines = done.stderr.decode(errors="replace").strip().splitlines()
        why = lines[-1].removeprefix("docteur-patch: error: ") if lines else f"exit {done.returncode}"
        raise UpdateError(f"the update would not rebuild {os.fspath(new)} bit for bit ({why})")


def delta(old: str | os.PathLike[str], new: str | os.PathLike[str], out: str | os.PathLike[str]) -> Made:
    """Write to `out` (replaced atomically) the update that turns image `old` into image `new`."""
    target = Path(out)
    directory = target.parent if str(target.parent) else Path(".")
    if target.is_dir():
        raise IsADirectoryError(21, "Is a directory", str(target))
    prefix = f".{target.name}{TEMP_INFIX}"
    remove_abandoned(directory, prefix)
    remove_abandoned(Path(tempfile.gettempdir()), SCRATCH_PREFIX)
    fd, tmp = create_beside(target, TEMP_INFIX)
    try:
        with os.fdopen(fd, "wb") as f, ImageParts(old) as o, ImageParts(new) as n:
            encoder = _Encoder(o, n)
            hashed = _Hashing(f)
            hashed.write(encoder.header().encode())
            with compressor().stream_writer(hashed, closefd=False) as z:  # type: ignore[arg-type]
                encoder.body(BodyWriter(z))  # type: ignore[arg-type]
            f.write(hashed.hash.digest())
            f.flush()
            os.fsync(f.fileno())
            made = Made(
                str(target),
                f.tell(),
                o.commit.hex(),
                n.commit.hex(),
                n.count,
                encoder.copied_entries,
                encoder.copied_bytes,
                n.count - encoder.copied_entries,
                n.placement.pack_length - 32 - encoder.copied_bytes,
            )
        with tempfile.TemporaryDirectory(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-") as scratch:
            _check_by_patch(old, tmp, Path(scratch) / "new.img", new)
        publish(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return made
