"""What both layouts (the path index, or trees parsed into a trie) say about a path, and path handling."""

from __future__ import annotations

import errno
from collections import namedtuple

from docteur.git.objects import MODE_DIR, MODE_GITLINK

UNKNOWN = -1


class Entry(namedtuple("Entry", "name mode oid size where length")):
    """A path's entry: from its tree (name, mode, raw id) and, when the image has a path index, where
    its object lies (`where`: a PACK offset or a zstd frame; `length`: the entry's length or the
    offset in the frame) and its size. UNKNOWN (-1) where the layout does not know."""

    __slots__ = ()
    name: bytes
    mode: int
    oid: bytes
    size: int
    where: int
    length: int


def is_dir(mode: int) -> bool:
    # An uninitialised submodule (gitlink) shows as an empty directory, as in a fresh checkout.
    return mode in (MODE_DIR, MODE_GITLINK)


def shown(path: bytes) -> str:
    return "/" + path.decode("utf-8", "surrogateescape")


def missing(path: bytes) -> FileNotFoundError:
    return FileNotFoundError(errno.ENOENT, "No such file or directory in the image", shown(path))


def not_a_directory(path: bytes) -> NotADirectoryError:
    return NotADirectoryError(errno.ENOTDIR, "Not a directory", shown(path))


def normalize(path: str | bytes) -> bytes:
    """'/a//b/./c/../d' -> b'a/b/d'; '..' never climbs above the root."""
    raw = path.encode("utf-8", "surrogateescape") if isinstance(path, str) else path
    # Most paths are already normal: no leading, trailing or doubled '/', no component starting with '.'.
    if raw and raw[0] not in b"/." and raw[-1] != 0x2F and b"//" not in raw and b"/." not in raw:
        return raw
    parts: list[bytes] = []
    for part in raw.split(b"/"):
        if part == b"..":
            if parts:
                parts.pop()
        elif part and part != b".":
            parts.append(part)
    return b"/".join(parts)
