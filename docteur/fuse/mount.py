"""Mount an image with libfuse3 through mfusepy: read-only, single-threaded, cached by the kernel.

The image never changes under a mount (docteur-make replaces files atomically, and the mapping keeps the old
one), so the kernel may keep pages, attributes and lookups for as long as it likes. The reader is not
thread-safe, and Python threads would gain nothing under the GIL: libfuse runs one thread (-s).
"""

from __future__ import annotations

import itertools
import os
import time
from typing import Any

import docteur
from docteur.bytesource.location import is_url
from docteur.errors import DocteurError

CACHE_SECONDS = 86_400
FUSE_READDIR_PLUS = 1  # libfuse3's enum fuse_readdir_flags
FUSE_FILL_DIR_PLUS = 2  # libfuse3's enum fuse_fill_dir_flags
_FORCED = {"ro", "rw", "use_ino", "nothreads", "foreground", "debug"}


def _plus_fuse() -> type:
    """mfusepy's FUSE, with directory listings that carry every entry's attributes when the kernel asks
    for them (READDIRPLUS): mfusepy passes only names and types, so the kernel would look each entry up
    again, one round trip per file, before `ls -l`, `find` or a reader could use it. Entries go with their
    offsets: libfuse 3.14 keeps the attributes of plus entries only on that path."""
    from mfusepy import FUSE

    class PlusFUSE(FUSE):  # type: ignore[misc]
        def readdir_fuse_3(
            self, path: bytes, buf: Any, filler: Any, offset: int, fip: Any, flags: int
        ) -> int:
            listing = self.operations.listing(path.decode(self.encoding, self.errors))
            plus = FUSE_FILL_DIR_PLUS if flags & FUSE_READDIR_PLUS else 0
            # The kernel takes a page of entries per call: no copy of a long listing each time.
            for position, (name, st) in enumerate(itertools.islice(listing, offset, None), start=offset + 1):
                fill = plus if position > 2 else 0  # "." and ".." are listed plain
                if filler(buf, name, st, position, fill) != 0:
                    break  # the kernel's buffer is full: it asks again from `position`
            return 0

    return PlusFUSE


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


def mount(
    image: str,
    mountpoint: str,
    *,
    foreground: bool = False,
    options: str = "",
    remote: dict[str, object] | None = None,
) -> None:
    """Serve `image` at `mountpoint` until unmounted (`fusermount3 -u`); in the background unless
    `foreground`. Returns when the mount ends (in the background, only the daemon's copy returns)."""
    extra = parse_options(options)
    if not os.path.isdir(mountpoint):
        raise MountError(f"{mountpoint}: mountpoint is not an existing directory")
    try:
        fuse = _plus_fuse()
    except OSError as e:  # mfusepy loads libfuse3 when imported
        raise MountError(f"cannot load libfuse3 ({e}): install Debian's fuse3") from None
    if is_url(image) and not foreground:
        # A remote image holds threads and connections, which libfuse's fork would not carry into its
        # daemon: check the image here, then open it again in a daemon of our own, in the foreground.
        docteur.open(image, **(remote or {})).close()
        if not _in_daemon(mountpoint):
            return  # the daemon serves the mount
        foreground = True
    with docteur.open(image, **(remote or {})) as img:
        where = img.source.name if is_url(image) else os.path.abspath(image)
        settings: dict[str, str | bool | int] = {
            "fsname": where.replace("\\", "\\\\").replace(",", "\\,"),
            "subtype": "docteur",
            "ro": True,
            "use_ino": True,
            "kernel_cache": True,
            "entry_timeout": CACHE_SECONDS,
            "attr_timeout": CACHE_SECONDS,
            "negative_timeout": CACHE_SECONDS,
            **extra,
        }
        from docteur.fuse.ops import ImageOperations

        try:
            fuse(ImageOperations(img), mountpoint, foreground=foreground, nothreads=True, **settings)
        except RuntimeError:
            raise MountError(f"cannot mount {image} on {mountpoint}") from None


def _in_daemon(mountpoint: str, wait: float = 30.0) -> bool:
    """Fork a detached daemon: True in it; in the parent, False once the mount is up (MountError if the
    daemon failed first)."""
    pid = os.fork()
    if pid == 0:
        os.setsid()
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        return True
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if os.path.ismount(mountpoint):
            return False
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            raise MountError(
                f"the mount on {mountpoint} ended at once (status {os.waitstatus_to_exitcode(status)})"
            )
        time.sleep(0.02)
    raise MountError(f"the mount on {mountpoint} did not come up within {wait:.0f} s")
