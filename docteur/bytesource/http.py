"""An image on a web server or object store, read lazily in ranged requests (transport.py), block by block.

Reads are served from fixed-size blocks: first from a memory LRU bounded in bytes, then from the disk cache
(cache.py), then from the server, the missing blocks of one read merged into one request. Sequential reads
start a read-ahead that grows as the sequence goes on. `prefetch(ranges)` plans the blocks of the ranges in
their order and keeps up to `parallel` requests of up to `request_bytes` in flight, never more than half of
`memory_bytes` ahead of the reader, so that a reader going through the image in order finds its blocks
arrived. A read that needs a block being fetched waits for that fetch instead of asking again.

Thread-safe: the 9P server reads from worker threads.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

from docteur.bytesource import ByteSource
from docteur.bytesource.cache import DEFAULT_CACHE_BYTES, DiskCache, default_dir
from docteur.bytesource.transport import Pin, Transport, cache_url

TYPE_CHECKING = False
if TYPE_CHECKING:
    from docteur.bytesource import Buffer

DEFAULT_BLOCK_SIZE = 32 << 10
DEFAULT_MEMORY_BYTES = 16 << 20
DEFAULT_REQUEST_BYTES = 1 << 20
DEFAULT_PARALLEL = 6  # against 4 and 8, behind 50 ms of RTT: 6 and 8 tied, 25 % faster than 4
DEFAULT_TIMEOUT = 30.0
DEFAULT_RETRIES = 4
DEFAULT_BACKOFF = 0.25
DEFAULT_REDIRECTS = 5
# Read-ahead starts when READAHEAD_AFTER reads in a row each went on into the next block, with READAHEAD_START
# blocks, doubling on each further one. Not sooner: a lookup reading two neighbouring blocks of an index is
# not a sequential reader, and reading ahead for it would cost 128 KiB for nothing.
READAHEAD_AFTER = 2
READAHEAD_START = 4


class _Default:
    def __repr__(self) -> str:
        return "DEFAULT"


#: `cache_dir=DEFAULT`: $XDG_CACHE_HOME/docteur, else ~/.cache/docteur.
DEFAULT = _Default()


class HttpSource(ByteSource):
    """The image at an http:// or https:// URL (credentials in the URL, or from ~/.netrc, are sent as Basic).

    Construction contacts the server (one ranged GET, conditional when the disk cache knows the image) and
    raises docteur.errors.RemoteError when the image cannot be read; reads raise RemoteError, or its subclass
    ImageChangedError when the image was replaced on the server since.

    - `cache_dir`: where the disk cache lives (DEFAULT: $XDG_CACHE_HOME/docteur); None: no disk cache.
    - `cache_bytes`: the disk cache's cap (1 GiB), shared by every image in it; 0: no disk cache.
    - `max_age`: seconds during which the disk cache's pin of the URL is trusted without asking the server
      (0: every open sends one conditional request).
    - `memory_bytes`: the in-memory LRU of blocks (16 MiB); prefetching stays within half of it.
    - `block_size`: the unit of reads and of the caches (32 KiB), a power of two from 4 KiB.
    - `request_bytes`: the largest read-ahead or prefetch request (1 MiB); `parallel`: how many in flight (6).
    - `timeout`: seconds to connect or to wait for any byte (30); a whole answer, status line and headers
      included, must arrive within the timeout plus its body's length at 32 KiB/s. `retries` (4) more
      attempts for what may be transient, `backoff` (0.25 s) doubling between.
    - `max_redirects` (5); `ca_certs`: a PEM file of CAs to trust instead of the system's; `netrc`: whether
      ~/.netrc (or $NETRC) is read for credentials when the URL has none.
    """

    def __init__(
        self,
        url: str,
        *,
        cache_dir: str | os.PathLike[str] | _Default | None = DEFAULT,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        max_age: float = 0.0,
        memory_bytes: int = DEFAULT_MEMORY_BYTES,
        block_size: int = DEFAULT_BLOCK_SIZE,
        request_bytes: int = DEFAULT_REQUEST_BYTES,
        parallel: int = DEFAULT_PARALLEL,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        backoff: float = DEFAULT_BACKOFF,
        max_redirects: int = DEFAULT_REDIRECTS,
        ca_certs: str | None = None,
        netrc: bool = True,
    ) -> None:
        if block_size < 4096 or block_size & (block_size - 1):
            raise ValueError("block_size must be a power of two from 4096")
        if memory_bytes < 4 * block_size or request_bytes < block_size or parallel < 1:
            raise ValueError("memory_bytes must hold 4 blocks, request_bytes one, and parallel be at least 1")
        self.block_size = block_size
        self._memory_bytes = memory_bytes
        self._run_blocks = request_bytes // block_size
        self._window = max(1, memory_bytes // 2 // block_size)
        self._parallel = parallel
        self._transport = Transport(
            url,
            timeout=timeout,
            retries=max(0, retries),
            backoff=backoff,
            max_redirects=max_redirects,
            ca_certs=ca_certs,
            use_netrc=netrc,
            connections=parallel + 1,
        )
        self.name = self._transport.name
        self._lock = threading.Lock()
        self._blocks: OrderedDict[int, bytes] = OrderedDict()
        self._held = 0
        self._pending: dict[int, Future[dict[int, bytes]]] = {}
        self._inflight = 0
        self._plan: Iterator[int] | None = None
        self._plan_next: int | None = None
        # The plan's blocks fetched or in flight that the reader has not reached yet.
        self._ahead: OrderedDict[int, None] = OrderedDict()
        self._last = -2  # last block of the previous read
        self._streak = 0
        self._readahead_to = 0  # read-ahead has been started up to this block
        self._workers: ThreadPoolExecutor | None = None
        self._closed = False
        self._disk: DiskCache | None = None
        self._key = ""
        if cache_dir is not None and cache_bytes > 0:
            self._disk = DiskCache(
                default_dir() if isinstance(cache_dir, _Default) else cache_dir, cache_bytes
            )
        try:
            self._open(url, max_age)
        except BaseException:
            self._transport.close()
            raise

    def _open(self, url: str, max_age: float) -> None:
        """Pin the image: from the disk cache's record when younger than `max_age`, else by asking."""
        pin_url = cache_url(url, query=True)
        known, checked = self._remembered(pin_url)
        data = None
        trusted = known is not None and time.time() - checked < max_age
        if trusted:
            self._transport.pin = pin = known
        else:
            pin, data = self._transport.contact(self.block_size, known)
        self.pin = pin
        self.size = pin.size
        if self._disk is not None and not pin.validated:
            self._disk = None  # a replaced image could not be told apart from this one: keep nothing
        if self._disk is not None:
            self._key = self._disk.image_key(
                cache_url(url), pin.etag, pin.last_modified, pin.size, self.block_size
            )
            if not trusted:
                record = {"size": pin.size, "etag": pin.etag, "last_modified": pin.last_modified}
                self._disk.store_pin(pin_url, {**record, "checked": time.time()})
        if data:
            blocks = self._split(0, data)
            with self._lock:
                self._keep(blocks)
            if self._disk is not None:
                for b, block in blocks.items():
                    self._disk.put(self._key, b, block)

    def _remembered(self, pin_url: str) -> tuple[Pin | None, float]:
        """The pin the disk cache recorded for the URL, and when it was last checked with the server."""
        record = self._disk.load_pin(pin_url) if self._disk else None
        if record is None:
            return None, 0.0
        try:
            size, etag, modified, checked = (record[k] for k in ("size", "etag", "last_modified", "checked"))
            return Pin(int(size), str(etag), str(modified)), float(checked)  # type: ignore[arg-type]
        except (KeyError, TypeError, ValueError):
            return None, 0.0

    # -- the interface -----------------------------------------------------------------------------

    @property
    def requests(self) -> int:
        """Requests sent to the server so far (retries and redirects included)."""
        return self._transport.requests

    @property
    def held_bytes(self) -> int:
        """Bytes of blocks held in memory now (at most `memory_bytes`)."""
        return self._held

    def read(self, offset: int, length: int) -> Buffer:
        if self._closed:
            raise ValueError(f"{self.name}: read from a closed source")
        end = min(offset + length, self.size)
        if offset < 0 or length < 0:
            raise ValueError("negative offset or length")
        if offset >= end:
            return b""
        bs = self.block_size
        first, last = offset // bs, (end - 1) // bs
        if first == last == self._last:
            # The block the previous read ended in (many small reads in a row): nothing to plan.
            with self._lock:
                data = self._blocks.get(first)
                if data is not None:
                    self._blocks.move_to_end(first)
                    return memoryview(data)[offset - first * bs : end - first * bs]
        got: dict[int, bytes] = {}
        waits: list[Future[dict[int, bytes]]] = []
        mine: list[list[int]] = []
        with self._lock:
            for b in range(first, last + 1):
                data = self._blocks.get(b)
                if data is not None:
                    self._blocks.move_to_end(b)
                    got[b] = data
                elif b in self._pending:
                    waits.append(self._pending[b])
                elif mine and mine[-1][-1] == b - 1:
                    mine[-1].append(b)
                else:
                    mine.append([b])
            futures = [self._register(run) for run in mine]
            self._advance(first, last, held=not mine and not waits)
            self._pump()
        for run, fut in zip(mine, futures, strict=True):
            self._complete(run, fut)
            waits.append(fut)
        for fut in waits:
            got.update(fut.result())
        if first == last:
            return memoryview(got[first])[offset - first * bs : end - first * bs]
        parts = [memoryview(got[b]) for b in range(first, last + 1)]
        parts[0] = parts[0][offset - first * bs :]
        parts[-1] = parts[-1][: end - last * bs]
        return b"".join(parts)

    def prefetch(self, ranges: Iterable[tuple[int, int]]) -> None:
        """Fetch the blocks of `ranges` in order, a few requests in flight; a new call replaces the plan.

        The ranges are consumed lazily (a generator over a whole image is fine).
        """
        with self._lock:
            if self._closed:
                return
            self._plan = self._blocks_of(ranges)
            self._plan_next = None
            self._ahead.clear()
            self._pump()

    def release(self) -> None:
        with self._lock:
            self._blocks.clear()
            self._held = 0

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._plan = None
            workers, self._workers = self._workers, None
        if workers is not None:
            workers.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            for fut in set(self._pending.values()):
                if not fut.done():  # its fetch was cancelled: whoever waits must not wait forever
                    fut.set_exception(ValueError(f"{self.name}: source closed"))
            self._pending.clear()
        self.release()
        self._transport.close()

    # -- planning (called with the lock held) ------------------------------------------------------

    def _blocks_of(self, ranges: Iterable[tuple[int, int]]) -> Iterator[int]:
        """The blocks of `ranges` in order, a block shared by neighbouring ranges once."""
        bs, size = self.block_size, self.size
        previous = -1
        for offset, length in ranges:
            end = min(offset + length, size)
            if offset < 0 or offset >= end:
                continue
            first, last = offset // bs, (end - 1) // bs
            yield from range(first + (first == previous), last + 1)
            previous = last

    def _advance(self, first: int, last: int, held: bool) -> None:
        """Note a read of blocks [first, last]: the plan's window moves on, or sequential reads read ahead.

        A jump to blocks already held (a delta's base, read a moment ago) does not break a sequence.
        """
        sequential = first in (self._last, self._last + 1)
        if held and not sequential:
            return
        self._last = last
        target = last if last in self._ahead else first if first in self._ahead else None
        if target is not None:
            while self._ahead and self._ahead.popitem(last=False)[0] != target:
                pass  # the reader is past these
            return
        if self._plan is not None:
            return
        self._streak = self._streak + 1 if sequential else 0
        if not sequential:
            self._readahead_to = 0
        if self._streak < READAHEAD_AFTER:
            return
        depth = min(READAHEAD_START << min(self._streak - READAHEAD_AFTER, 20), self._window)
        if self._readahead_to - last > depth // 2:
            return  # enough is on its way
        start, stop = max(self._readahead_to, last + 1), min(last + 1 + depth, self._count)
        todo = [b for b in range(start, stop) if b not in self._blocks and b not in self._pending]
        for run in _consecutive(todo):
            for i in range(0, len(run), self._run_blocks):
                self._submit(run[i : i + self._run_blocks])
        self._readahead_to = max(self._readahead_to, stop)

    def _pump(self) -> None:
        """Start the plan's next requests while fewer than `parallel` are in flight and the window allows."""
        while self._plan is not None and self._inflight < self._parallel and len(self._ahead) < self._window:
            run: list[int] = []
            room = min(self._run_blocks, self._window - len(self._ahead))
            while len(run) < room:
                b = self._peek()
                if b is None or (run and b != run[-1] + 1):
                    break
                if b in self._blocks or b in self._pending:
                    if run:
                        break
                    self._plan_next = None  # already there: skip it
                    continue
                self._plan_next = None
                run.append(b)
            if not run:
                if self._peek() is None:
                    self._plan = None
                continue
            self._ahead.update(dict.fromkeys(run))
            self._submit(run)

    def _peek(self) -> int | None:
        if self._plan_next is None and self._plan is not None:
            self._plan_next = next(self._plan, None)
        return self._plan_next

    @property
    def _count(self) -> int:
        return -(-self.size // self.block_size)

    def _register(self, run: list[int]) -> Future[dict[int, bytes]]:
        fut: Future[dict[int, bytes]] = Future()
        for b in run:
            self._pending[b] = fut
        return fut

    def _submit(self, run: list[int]) -> None:
        if self._workers is None:
            self._workers = ThreadPoolExecutor(self._parallel, thread_name_prefix="docteur-http")
        self._inflight += 1
        self._workers.submit(self._complete, run, self._register(run), True)

    # -- fetching (called without the lock) --------------------------------------------------------

    def _complete(self, run: list[int], fut: Future[dict[int, bytes]], background: bool = False) -> None:
        """Fetch the registered `run` and resolve `fut`, which the threads needing its blocks wait for."""
        try:
            fut.set_result(self._fetch(run))
        except BaseException as e:
            fut.set_exception(e)
        finally:
            with self._lock:
                for b in run:
                    if self._pending.get(b) is fut:
                        del self._pending[b]
                if background:
                    self._inflight -= 1
                    self._pump()

    def _fetch(self, run: list[int]) -> dict[int, bytes]:
        """Blocks `run` (consecutive) from the disk cache, else in one request; kept in memory and on disk."""
        got: dict[int, bytes] = {}
        missing: list[int] = []
        for b in run:
            data = self._disk.get(self._key, b) if self._disk else None
            if data is not None:
                got[b] = data
            else:
                missing.append(b)
        for sub in _consecutive(missing):
            start, end = sub[0] * self.block_size, min((sub[-1] + 1) * self.block_size, self.size)
            fetched = self._split(sub[0], self._transport.fetch(start, end))
            if self._disk is not None:
                for b, data in fetched.items():
                    self._disk.put(self._key, b, data)
            got.update(fetched)
        with self._lock:
            self._keep(got)
        return got

    def _split(self, first: int, data: bytes) -> dict[int, bytes]:
        bs = self.block_size
        return {first + i: data[i * bs : (i + 1) * bs] for i in range(-(-len(data) // bs))}

    def _keep(self, blocks: dict[int, bytes]) -> None:
        """Into the memory LRU (the lock held), evicting the least recently used blocks past the bound."""
        if self._closed:
            return
        for b, data in blocks.items():
            old = self._blocks.pop(b, None)
            if old is not None:
                self._held -= len(old)
            self._blocks[b] = data
            self._held += len(data)
        while self._held > self._memory_bytes and len(self._blocks) > 1:
            _, data = self._blocks.popitem(last=False)
            self._held -= len(data)


def _consecutive(blocks: list[int]) -> Iterator[list[int]]:
    run: list[int] = []
    for b in blocks:
        if run and b != run[-1] + 1:
            yield run
            run = []
        run.append(b)
    if run:
        yield run
