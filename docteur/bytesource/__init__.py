"""Where an image's bytes come from: one interface, `read(offset, length)`, with a local file or block
device (mapped.py) or an HTTP server (http.py) behind it.

The header, PACK, IDX and section readers only ever call `read`; they do not know which source they use.
"""

from __future__ import annotations

# Not `from typing import TYPE_CHECKING`: importing typing costs the guest's reader a noticeable start-up.
TYPE_CHECKING = False

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    Buffer = bytes | memoryview


class ByteSource:
    """Random access to the bytes of one image.

    `size` is how many bytes the source holds (a block device's size, a URL's length): lengths inside the
    image always come from its header and IDX, never from `size`, which only bounds reads.
    """

    #: What to call the source in messages: a path, or a URL without its credentials.
    name: str = ""
    size: int = 0

    def read(self, offset: int, length: int) -> Buffer:
        """The bytes at [offset, offset + length), fewer only where the source ends.

        The result may be a memoryview into the source's memory: it is valid until `close`.
        Transport failures raise docteur.errors.RemoteError (ImageChangedError when the image was replaced
        since the source was opened); a negative offset or length, or a read after `close`, ValueError.
        """
        raise NotImplementedError

    def prefetch(self, ranges: Iterable[tuple[int, int]]) -> None:
        """Hint: these (offset, length) ranges will be read soon, in this order.

        A later call replaces the earlier hint. `ranges` may be consumed lazily, so a generator over the
        whole image costs no memory up front.
        """

    def release(self) -> None:
        """Hint: memory held for bytes read so far may be given back (they can be read again)."""

    def close(self) -> None:
        """Free what the source holds; reads after this fail."""

    def __enter__(self) -> ByteSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def chunks(source: ByteSource, offset: int, length: int, size: int = 1 << 20) -> Iterator[Buffer]:
    """The bytes at [offset, offset + length) in reads of at most `size` bytes (bounded memory for
    checksums and copies of whole parts); stops early where the source ends."""
    end = offset + length
    while offset < end:
        piece = source.read(offset, min(size, end - offset))
        if not piece:
            return
        yield piece
        offset += len(piece)
