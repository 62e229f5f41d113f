"""Reading an image over HTTP ranges (issue 13): nginx on loopback serving the image, HttpSource reading it.

What it measures today is the byte-source level: the reads a lookup of one small file makes (the header,
the first 64 KiB of the IDX, the file's object), counted in requests and bytes from nginx's access log; a
second file of the same folder; the same with a warm disk cache; the whole image read in PACK order with
`prefetch`, against the same reads from the local file; and the first figure and the whole read again
behind a proxy adding 50 ms of round-trip latency (tests/remote/loopback.py).

Once docteur.open takes URLs, the rows become the issue's goals by changing `_Session` alone: open with
`docteur.open(url, cache_dir=...)` instead of HttpSource, make `first` and `another` call `img.read(path)`,
and `whole` iterate `img.read_all()` (and the local peer `docteur.open(image).read_all()`); the servers,
the counting and the rows stay as they are.

    python -m bench.bench_http [DIR]     # default: the generated "pages" corpus (many small files)
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from bench.table import Row, render
from docteur.bytesource.http import HttpSource
from tests.remote.loopback import DelayProxy, Nginx, served_copy

IDX_PAGE = 64 << 10
RTT = 0.05
ROUNDS = 3  # whole-image reads per side; the best is kept


class Layout(NamedTuple):
    """Where the reads of the measured operations lie, found in the local image."""

    idx_offset: int
    first: tuple[int, int]  # (offset, length) of a small file's object
    another: tuple[int, int]  # another file of the same folder
    objects: list[tuple[int, int]]  # every object, in PACK order


def layout(image: Path) -> Layout:
    import docteur
    from docteur.image.format import PACK_OFFSET, locate

    sections, index = locate(memoryview(image.read_bytes()))
    starts = sorted(offset for _, offset, _ in index.entries())
    ends = dict(zip(starts, [*starts[1:], sections.pack_length - 20], strict=True))
    with docteur.open(image) as img:
        # A folder from the middle of the tree: its objects lie mid-PACK, far from the header.
        folders = [
            (top, [f for f in names if img.stat(f"{top}/{f}".lstrip("/")).mode != 0o120000])
            for top, _, names in img.walk()
        ]
        folders = [(top, files) for top, files in folders if len(files) >= 2]
        folder, files = folders[len(folders) // 2]
        oids = [img.stat(f"{folder}/{f}".lstrip("/")).oid for f in files[:2]]

    def span(oid: str) -> tuple[int, int]:
        offset = index.lookup(bytes.fromhex(oid))
        assert offset is not None
        return PACK_OFFSET + offset, ends[offset] - offset

    objects = [(PACK_OFFSET + start, ends[start] - start) for start in starts]
    return Layout(sections.idx_offset, span(oids[0]), span(oids[1]), objects)


class Counted(NamedTuple):
    requests: int
    kib: float
    seconds: float


class _Session:
    """One reader's run against the server: the measured operations, today on the byte source."""

    def __init__(self, url: str, plan: Layout, cache_dir: Path | None) -> None:
        self.url, self.plan, self.cache_dir = url, plan, cache_dir
        self.src: HttpSource | None = None

    def __enter__(self) -> _Session:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.src is not None:
            self.src.close()

    def open(self) -> HttpSource:
        self.src = HttpSource(self.url, cache_dir=self.cache_dir)
        return self.src

    def first(self) -> None:
        """Open, then what looking up one small file reads."""
        src = self.open()
        src.read(0, 28)
        src.read(self.plan.idx_offset, IDX_PAGE)
        src.read(*self.plan.first)

    def another(self) -> None:
        assert self.src is not None
        self.src.read(*self.plan.another)

    def whole(self) -> int:
        """Open, then every object in PACK order."""
        src = self.open()
        src.prefetch(self.plan.objects)
        return sum(len(src.read(o, n)) for o, n in self.plan.objects)


def _counted(server: Nginx, action: Callable[[], object]) -> Counted:
    mark = server.mark()
    started = time.perf_counter()
    action()
    seconds = time.perf_counter() - started
    logged = server.since(mark)
    return Counted(len(logged), sum(r.sent for r in logged) / 1024, seconds)


def _local_whole(image: Path, plan: Layout) -> float:
    best = float("inf")
    for _ in range(ROUNDS):
        started = time.perf_counter()
        fd = os.open(image, os.O_RDONLY)
        try:
            os.pread(fd, 28, 0)
            total = sum(len(os.pread(fd, n, o)) for o, n in plan.objects)
        finally:
            os.close(fd)
        best = min(best, time.perf_counter() - started)
    assert total == sum(n for _, n in plan.objects)
    return best


def _remote_whole(url: str, plan: Layout) -> float:
    best = float("inf")
    for _ in range(ROUNDS):
        started = time.perf_counter()
        with _Session(url, plan, None) as session:
            assert session.whole() == sum(n for _, n in plan.objects)
        best = min(best, time.perf_counter() - started)
    return best


def rows(tree: Path, source: Path | None = None, name: str | None = None) -> list[Row]:
    from docteur.make import make, parse_date

    with tempfile.TemporaryDirectory(prefix="bench-http-") as scratch:
        work = Path(scratch)
        image = work / "tree.img"
        make(str(source or tree), image, date=parse_date("2020-10-10T08:00:00+00:00"), quiet=True)
        plan = layout(image)
        served_copy(image, work / "www")
        label = f"{name or tree.name}, {image.stat().st_size / 1e6:.1f} MB image"
        with Nginx(work / "www") as server:
            url = server.url("disk.img")
            with _Session(url, plan, work / "cache") as session:
                first = _counted(server, session.first)
                another = _counted(server, session.another)
            with _Session(url, plan, work / "cache") as session:
                warm = _counted(server, session.first)
            remote, local = _remote_whole(url, plan), _local_whole(image, plan)
            with DelayProxy(server.port, RTT) as proxy:
                with _Session(proxy.url("disk.img"), plan, None) as session:
                    slow_first = _counted(server, session.first)
                slow_whole = _remote_whole(proxy.url("disk.img"), plan)
    byte_level = "byte source: header + 64 KiB of IDX + the object"
    level_note = "measured on HttpSource; the goal applies to read_all once docteur.open takes URLs"
    return [
        Row(
            f"HTTP: first small file, empty cache: requests ({label})",
            first.requests,
            note=byte_level,
            unit="req",
            limit=4,
            relative=False,
        ),
        Row(
            f"HTTP: first small file, empty cache: KiB transferred ({label})",
            first.kib,
            unit="KiB",
            limit=256,
            relative=False,
        ),
        Row(
            f"HTTP: another file of the same folder: requests ({label})",
            another.requests,
            unit="req",
            limit=1,
            relative=False,
        ),
        Row(
            f"HTTP: second run, warm cache: requests ({label})",
            warm.requests,
            unit="req",
            limit=1,
            relative=False,
        ),
        Row(
            f"HTTP: every object in PACK order with prefetch, loopback ({label})",
            remote,
            local,
            "s",
            "local file",
            note=level_note,
        ),
        Row(
            f"HTTP: first small file with {RTT * 1000:.0f} ms RTT, open included ({label})",
            slow_first.seconds,
            unit="s",
            limit=0.3,
            relative=False,
        ),
        Row(
            f"HTTP: every object in PACK order with prefetch, {RTT * 1000:.0f} ms RTT ({label})",
            slow_whole,
            local,
            "s",
            "local file",
            note=level_note,
        ),
    ]


if __name__ == "__main__":
    from bench import corpora

    where = Path(sys.argv[1]) if len(sys.argv) > 1 else corpora.generated("pages").tree
    print(render(rows(where)))
