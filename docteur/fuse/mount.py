"""Mount an image with libfuse3 through mfusepy: read-only, single-threaded, cached by the kernel.

The image never changes under a mount (docteur-make replaces files atomically, and the mapping keeps the old
one), so the kernel may keep pages, attributes and lookups for as long as it likes. The reader is not
thread-safe, and Python threads would gain nothing under the GIL: libfuse runs one thread (-s).
"""

from __future__ import annotations

import os

import docteur
from docteur.errors import DocteurError

CACHE_SECONDS = 86_400
_FORCED = {"ro", "rw", "use_ino", "nothreads", "foreground", "debug"}


class MountError(DocteurError):
    """The mount itself failed (libfuse missing, mountpoint refused)."""


def parse_options(text: str) -> dict[str, str | bool]:
    """`-o a,b=c` -> {"a": True, "b": "c"}; options that would make the mount writable are refused."""
    options: dict[str, str | bool] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, eq, value = item.partition("=")
        if key in _FORCED:
            raise ValueError(f"-o {key}: docteur mounts are always read-only and set this option themselves")
        options[key] = value if eq else True
    return options


def _image_bytes(img: docteur.Image) -> int:
    fd = os.open(img.path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return os.lseek(fd, 0, os.SEEK_END)
    finally:
        os.close(fd)


def mount(image: str, mountpoint: str, *, foreground: bool = False, options: str = "") -> None:
    """Serve `image` at `mountpoint` until unmounted (`fusermount3 -u`); in the background unless
    `foreground`. Returns when the mount ends (in the background, only the daemon's copy returns)."""
    extra = parse_options(options)
    if not os.path.isdir(mountpoint):
        raise MountError(f"{mountpoint}: mountpoint is not an existing directory")
    try:
        from mfusepy import FUSE
    except OSError as e:  # mfusepy loads libfuse3 when imported
        raise MountError(f"cannot load libfuse3 ({e}): install Debian's fuse3") from None
    from docteur.fuse.ops import ImageOperations

    with docteur.open(image) as img:
        name = os.path.abspath(image).replace("\\", "\\\\").replace(",", "\\,")
        settings: dict[str, str | bool | int] = {
            "fsname": name,
            "subtype": "docteur",
            "ro": True,
            "use_ino": True,
            "kernel_cache": True,
            "entry_timeout": CACHE_SECONDS,
            "attr_timeout": CACHE_SECONDS,
            "negative_timeout": CACHE_SECONDS,
            **extra,
        }
        try:
            FUSE(
                ImageOperations(img, _image_bytes(img)),
                mountpoint,
                foreground=foreground,
                nothreads=True,
                **settings,
            )
        except RuntimeError:
            raise MountError(f"cannot mount {image} on {mountpoint}") from None
