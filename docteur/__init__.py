"""docteur: read-only, block-aligned disk images of Git trees.

    import docteur
    with docteur.open("disk.img") as img:
        img.read("docs/a.md")

Names are ``str``; bytes that are not valid UTF-8 are kept with the ``surrogateescape`` error
handler (like ``os.fsdecode``), so ``name.encode("utf-8", "surrogateescape")`` gives back the
exact bytes stored in the Git tree.
"""

from __future__ import annotations

from docteur.errors import CorruptImageError, DocteurError

# Not `from typing import TYPE_CHECKING`: importing typing costs the guest's reader a noticeable start-up.
TYPE_CHECKING = False

if TYPE_CHECKING:
    import os
    from typing import Any

    from docteur.bytesource import ByteSource
    from docteur.fs.image import Image, Stat, View

__all__ = ["CorruptImageError", "DocteurError", "Image", "Stat", "View", "open"]
__version__ = "0.1.0"


def open(path: str | os.PathLike[str] | ByteSource, **options: Any) -> Image:
    """Open a docteur image for reading: a regular file, a raw block device, an https:// or http:// URL
    (or any fsspec URL), or a docteur.bytesource.ByteSource; closing the image closes the source."""
    from docteur.fs.image import Image

    return Image(path, **options)


def __getattr__(name: str) -> object:
    # Lazy attributes keep `import docteur` cheap for the CLI.
    if name in ("Image", "Stat", "View"):
        from docteur.fs import image

        return getattr(image, name)
    raise AttributeError(name)
