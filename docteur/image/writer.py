"""Assemble an image from a PACK and its IDX, atomically: a temporary file beside the target, then rename."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import BinaryIO

from docteur.image.format import PACK_OFFSET, align, encode_header

_ZEROS = bytes(1 << 16)


def _pad(out: BinaryIO, n: int) -> None:
    while n > 0:
        out.write(_ZEROS[: min(n, len(_ZEROS))])
        n -= len(_ZEROS)


def _write_sections(out: BinaryIO, commit: bytes, pack: Path, idx: bytes, block_size: int) -> int:
    pack_length = pack.stat().st_size
    idx_offset = align(PACK_OFFSET + pack_length, block_size)
    out.write(encode_header(commit, idx_offset))
    with pack.open("rb") as src:
        shutil.copyfileobj(src, out, 1 << 20)
    _pad(out, idx_offset - PACK_OFFSET - pack_length)
    out.write(idx)
    end = idx_offset + len(idx)
    size = align(end, block_size)
    _pad(out, size - end)
    return size


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_image(output: Path, commit: bytes, pack: Path, idx: bytes, block_size: int) -> int:
    """Write the image to `output` and return its size.

    A regular file is replaced atomically: on any failure `output` keeps its old content (or stays
    absent) and no temporary file is left. A block device is written in place, as `dd` would.
    """
    try:
        is_device = stat.S_ISBLK(output.stat().st_mode)
    except FileNotFoundError:
        is_device = False
    if is_device:
        with output.open("r+b") as dev:
            size = _write_sections(dev, commit, pack, idx, block_size)
            dev.flush()
            os.fsync(dev.fileno())
        return size
    if output.is_dir():
        raise IsADirectoryError(21, "Is a directory", str(output))
    if output.exists() and not output.is_file():
        raise OSError(22, "not a regular file or a block device", str(output))
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".tmp", dir=output.parent)
    except OSError as e:
        raise OSError(e.errno, e.strerror, str(output)) from None
    try:
        with os.fdopen(fd, "wb") as out:
            size = _write_sections(out, commit, pack, idx, block_size)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o666 & ~_current_umask())
        os.replace(tmp, output)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return size
