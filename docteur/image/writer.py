"""Assemble an image from a PACK, its IDX and the extension's sections, atomically: a temporary file beside
the target, then rename."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import BinaryIO

from docteur.blocksize import align
from docteur.bytesource import ByteSource, chunks
from docteur.image.format import PACK_OFFSET, encode_header
from docteur.scratch import remove_abandoned, tagged, umask
from docteur.sections.build import SectionData
from docteur.sections.table import Section, encode_table, place

_ZEROS = bytes(1 << 16)

# The PACK comes from a file (what git wrote) or from a range of another image (reindex, convert).
PackBytes = Path | tuple[ByteSource, int, int]


def _pad(out: BinaryIO, n: int) -> None:
    while n > 0:
        out.write(_ZEROS[: min(n, len(_ZEROS))])
        n -= len(_ZEROS)


def _pack_length(pack: PackBytes) -> int:
    return pack.stat().st_size if isinstance(pack, Path) else pack[2]


def _copy_pack(out: BinaryIO, pack: PackBytes) -> None:
    if isinstance(pack, Path):
        with pack.open("rb") as src:
            shutil.copyfileobj(src, out, 1 << 20)
        return
    source, offset, length = pack
    for piece in chunks(source, offset, length):
        out.write(piece)


def _write_parts(
    out: BinaryIO, commit: bytes, pack: PackBytes, idx: bytes, block_size: int, sections: list[SectionData]
) -> int:
    pack_length = _pack_length(pack)
    idx_offset = align(PACK_OFFSET + pack_length, block_size)
    out.write(encode_header(commit, idx_offset))
    _copy_pack(out, pack)
    _pad(out, idx_offset - PACK_OFFSET - pack_length)
    out.write(idx)
    end = idx_offset + len(idx)
    if not sections:
        size = align(end, block_size)
        _pad(out, size - end)
        return size
    table_at, offsets, size = place(end, block_size, [len(s.data) for s in sections])
    table = encode_table(
        block_size,
        [
            Section(s.kind, s.flags, at, len(s.data), hashlib.sha256(s.data).digest())
            for s, at in zip(sections, offsets, strict=True)
        ],
    )
    _pad(out, table_at - end)
    out.write(table)
    end = table_at + len(table)
    for s, at in zip(sections, offsets, strict=True):
        _pad(out, at - end)
        out.write(s.data)
        end = at + len(s.data)
    _pad(out, size - end)
    return size


def write_image(
    output: Path,
    commit: bytes,
    pack: PackBytes,
    idx: bytes,
    block_size: int,
    sections: list[SectionData] | None = None,
) -> int:
    """Write the image to `output` and return its size.

    A regular file is replaced atomically: on any failure `output` keeps its old content (or stays
    absent) and no temporary file is left. A block device is written in place, as `dd` would.
    """
    parts = sections or []
    try:
        is_device = stat.S_ISBLK(output.stat().st_mode)
    except FileNotFoundError:
        is_device = False
    if is_device:
        with output.open("r+b") as dev:
            size = _write_parts(dev, commit, pack, idx, block_size, parts)
            dev.flush()
            os.fsync(dev.fileno())
        return size
    if output.is_dir():
        raise IsADirectoryError(21, "Is a directory", str(output))
    if output.exists() and not output.is_file():
        raise OSError(22, "not a regular file or a block device", str(output))
    prefix = f".{output.name}."
    remove_abandoned(output.parent, prefix)  # what a SIGKILLed writer of this target left
    try:
        fd, tmp = tempfile.mkstemp(prefix=tagged(prefix), suffix=".tmp", dir=output.parent)
    except OSError as e:
        raise OSError(e.errno, e.strerror, str(output)) from None
    try:
        with os.fdopen(fd, "wb") as out:
            size = _write_parts(out, commit, pack, idx, block_size, parts)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o666 & ~umask())
        os.replace(tmp, output)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return size
