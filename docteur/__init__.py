"""docteur: read-only, block-aligned disk images of Git trees.

    import docteur
    with docteur.open("disk.img") as img:
        img.read("docs/a.md")

Names are ``str``; bytes that are not valid UTF-8 are kept with the ``surrogateescape`` error
handler (like ``os.fsdecode``), so ``name.encode("utf-8", "surrogateescape")`` gives back the
exact bytes stored in the Git tree.
"""

from __future__ import annotations

from docteur.errors import CorruptImageError, DocteurError, UpdateError

# Not `from typing import TYPE_CHECKING`: importing typing costs the guest's reader a noticeable start-up.
TYPE_CHECKING = False

if TYPE_CHECKING:
    import os
    from typing import Any

    from docteur.bytesource import ByteSource
    from docteur.fs.image import Image, Stat, View
    from docteur.update.apply import Patched
    from docteur.update.delta import Made

__all__ = [
    "CorruptImageError",
    "DocteurError",
    "Image",
    "Stat",
    "UpdateError",
    "View",
    "delta",
    "open",
    "patch",
]
__version__ = "0.1.0"


def open(path: str | os.PathLike[str] | ByteSource, **options: Any) -> Image:
    """Open a docteur image for reading: a regular file, a raw block device, an https:// or http:// URL
    (or any fsspec URL), or a docteur.bytesource.ByteSource; closing the image closes the source."""
    from docteur.fs.image import Image

    return Image(path, **options)


def delta(old: str | os.PathLike[str], new: str | os.PathLike[str], out: str | os.PathLike[str]) -> Made:
    """Write to `out` the update that turns image `old` into image `new` (see README, "Delta updates")."""
    from docteur.update.delta import delta as run

    return run(old, new, out)


def patch(
    old: str | os.PathLike[str], update: str | os.PathLike[str], out: str | os.PathLike[str]
) -> Patched:
    """Rebuild, bit for bit, the image `update` describes against image `old`, into `out`: written
    atomically, and only when `old` is the image the update names and the result hashes as it says."""
    from docteur.update.apply import patch as run

    return run(old, update, out)


def __getattr__(name: str) -> object:
    # Lazy attributes keep `import docteur` cheap for the CLI.
    if name in ("Image", "Stat", "View"):
        from docteur.fs import image

        return getattr(image, name)
    raise AttributeError(name)
