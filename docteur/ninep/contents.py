"""The contents of open files, shared by every fid that opened the same blob and bounded in bytes.

The reader hands out whole blobs, so an open file costs its size until its fid is clunked. Without a bound,
64 clients each reading a different large file hold 64 of them; with one, fids of the same blob share one
copy, and once the budget is taken a file opens as a handle that fetches each read from the image again:
slower (the reader keeps only the last large object), but memory stays bounded whatever clients open.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable

from docteur.ninep.fs import BytesHandle, Handle

# What open files may hold over the whole server: the bench's 64 clients reading a corpus of large files
# (35 MB) fit, and the server stays well under 256 MiB with the reader's own caches beside it.
HELD_BYTES = 128 << 20


class Refetching:
    """A handle that holds nothing: each read loads the blob again (in a worker) and slices it."""

    def __init__(self, load: Callable[[], bytes]) -> None:
        self._load = load

    def read(self, offset: int, count: int) -> bytes:
        return self._load()[offset : offset + count]


class Contents:
    def __init__(self, budget: int = HELD_BYTES) -> None:
        self.budget = budget
        self.held = 0  # bytes of the handles alive in `shared`
        self._shared: weakref.WeakValueDictionary[str, BytesHandle] = weakref.WeakValueDictionary()
        # Opens run in workers, and a handle's last reference may go in any thread, even inside this lock
        # (the cyclic collector): reentrant.
        self._lock = threading.RLock()

    def open(self, oid: str, size: int, load: Callable[[], bytes]) -> Handle:
        """A handle on blob ``oid`` of ``size`` bytes; ``load()`` fetches its contents."""
        with self._lock:
            shared = self._shared.get(oid)
            if shared is not None:
                return shared
            if self.held + size > self.budget:
                return Refetching(load)
            self.held += size  # reserved while it loads, so that loads at once cannot overshoot together
        try:
            data = load()
        finally:
            with self._lock:
                self.held -= size
        with self._lock:
            shared = self._shared.get(oid)  # opened by another thread meanwhile
            if shared is not None:
                return shared
            handle = BytesHandle(data)
            self._shared[oid] = handle
            self.held += len(data)
            weakref.finalize(handle, self._drop, len(data))
        return handle

    def _drop(self, size: int) -> None:
        with self._lock:
            self.held -= size
