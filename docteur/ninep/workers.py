"""Worker threads shared fairly between connections.

Each connection's calls wait in a queue of its own; whenever a thread is free, it goes to the connection
served least recently among those with a call waiting (round-robin), and no connection may hold more than
``share`` threads at once. So a client that floods heavy requests gets its turn like any other, and a
thread is always left for the others: its reads cannot starve another client's small requests. All the
bookkeeping happens in the event loop; a thread counts as busy until its call really returns, even when
the request that made it was flushed or its client is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

Owner = object  # whoever the calls are made for: a connection


class Workers:
    def __init__(self, threads: int) -> None:
        self.threads = threads
        self.share = max(1, threads - 1)  # one thread always stays free for the other connections
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="docteur-9p")
        self.busy = 0  # calls running (or handed to the pool), never more than its threads
        self.running: Counter[Owner] = Counter()
        self.waiting: dict[Owner, deque[asyncio.Future[None]]] = {}
        self.served: dict[Owner, int] = {}  # when each owner with calls was last given a thread
        self.grants = itertools.count()

    def load(self, owner: Owner) -> int:
        """Calls of ``owner`` running or waiting for a thread."""
        queue = self.waiting.get(owner)
        return self.running[owner] + (len(queue) if queue else 0)

    async def run(self, owner: Owner, fn: Callable[..., Any], *args: object) -> Any:
        """``fn(*args)`` in a worker thread, when ``owner``'s turn comes."""
        loop = asyncio.get_running_loop()
        turn: asyncio.Future[None] = loop.create_future()
        self.waiting.setdefault(owner, deque()).append(turn)
        self._dispatch()
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self._release(owner)  # given a thread just as it was cancelled
            else:
                self._forget(owner, turn)
            raise
        job: Future[Any] = self.pool.submit(fn, *args)
        job.add_done_callback(lambda _: _call_soon(loop, self._release, owner))
        return await asyncio.wrap_future(job, loop=loop)

    def shutdown(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)

    def _dispatch(self) -> None:
        while self.busy < self.threads:
            # The owner served least recently goes first (one that had nothing waiting, first of all).
            ready = [o for o in self.waiting if self.running[o] < self.share]
            if not ready:
                return
            owner = min(ready, key=lambda o: self.served.get(o, -1))
            queue = self.waiting[owner]
            turn = queue.popleft()
            if not queue:
                del self.waiting[owner]
            if turn.cancelled():
                continue  # its task was cancelled and has yet to run: nothing to give it
            self.running[owner] += 1
            self.busy += 1
            self.served[owner] = next(self.grants)
            turn.set_result(None)

    def _release(self, owner: Owner) -> None:
        self.busy -= 1
        self.running[owner] -= 1
        if not self.running[owner]:
            del self.running[owner]
            self._retire(owner)
        self._dispatch()

    def _retire(self, owner: Owner) -> None:
        """Forget an owner with nothing running or waiting (a closed connection leaves no trace)."""
        if owner not in self.waiting and owner not in self.running:
            self.served.pop(owner, None)

    def _forget(self, owner: Owner, turn: asyncio.Future[None]) -> None:
        queue = self.waiting.get(owner)
        if queue is not None:
            with contextlib.suppress(ValueError):
                queue.remove(turn)
            if not queue:
                del self.waiting[owner]
                self._retire(owner)


def _call_soon(loop: asyncio.AbstractEventLoop, fn: Callable[..., object], *args: object) -> None:
    """From a worker thread: run ``fn`` in the loop, unless the loop is gone (the server has stopped)."""
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(fn, *args)
