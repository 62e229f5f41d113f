"""A local image: a regular file or a raw block device, memory-mapped and read in place."""

from __future__ import annotations

import contextlib
import mmap
import os

from docteur.bytesource import ByteSource
from docteur.errors import CorruptImageError

# How much of the mapping may stay resident before its pages are handed back (they remain in the page
# cache): RSS stays bounded whatever the image size.
DEFAULT_MAPPED_BYTES = 1 << 20


class MappedFile(ByteSource):
    """`read` returns memoryviews into the mapping: no copy, and pages fault in only when used."""

    def __init__(self, path: str | os.PathLike[str], *, mapped_bytes: int = DEFAULT_MAPPED_BYTES) -> None:
        self.name = os.fspath(path)
        fd = os.open(self.name, os.O_RDONLY | os.O_CLOEXEC)
        try:
            self.size = os.lseek(fd, 0, os.SEEK_END)  # st_size is 0 for a block device
            if self.size == 0:
                raise CorruptImageError(f"{self.name} is empty")
            self._mmap = mmap.mmap(fd, self.size, prot=mmap.PROT_READ)
        finally:
            os.close(fd)
        self._view = memoryview(self._mmap)
        self._mapped_bytes = mapped_bytes
        self._touched = 0

    def read(self, offset: int, length: int) -> memoryview:
        self._touched += length
        if self._touched > self._mapped_bytes:
            self.release()
        return self._view[offset : offset + length]

    def release(self) -> None:
        self._touched = 0
        dontneed = getattr(mmap, "MADV_DONTNEED", None)  # Linux; elsewhere the kernel decides alone
        if dontneed is not None and not self._mmap.closed:
            self._mmap.madvise(dontneed)

    def close(self) -> None:
        self._view.release()
        # A slice may still live (e.g. in a traceback): the mapping then goes when it does.
        with contextlib.suppress(BufferError):
            self._mmap.close()
