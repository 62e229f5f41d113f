"""Reading an image over HTTP ranges (issue 13): nginx on loopback serving the image, the reader reading it.

The reader opens the image through HttpSource (`docteur.open(HttpSource(url))`); nginx's access log counts
the requests and bytes: the first small file with an empty cache (open included), another file of the
same folder, a second run with a warm disk cache; then `read_all()` over loopback against the same from the
local file, and the first file and the whole read again behind a proxy adding 50 ms of round-trip latency
(tests/remote/loopback.py). Once docteur.open takes URLs, `_open` becomes `docteur.open(url, cache_dir=...)`.

    python -m bench.bench_http [DIR]     # default: the generated "pages" corpus (many small files)
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import docteur
from bench.table import Row, render
from docteur.fs.image import Image
from tests.remote.loopback import DelayProxy, Nginx, served_copy

RTT = 0.05
ROUNDS = 3  # whole reads per side; the best is kept


def _open(url: str, cache_dir: Path | None) -> Image:
    return docteur.open(url, cache_dir=cache_dir)


def two_files(image: Path) -> tuple[str, str]:
    """Two files of one folder from the middle of the tree (their objects lie mid-PACK)."""
    with docteur.open(image) as img:
        folders = [[f"{top}/{f}".lstrip("/") for f in names] for top, _, names in img.walk()]
        folders = [[p for p in paths if img.stat(p).mode != 0o120000] for paths in folders]
        folders = [paths for paths in folders if len(paths) >= 2]
        paths = folders[len(folders) // 2]
    return paths[0], paths[1]


class Counted(NamedTuple):
    requests: int
    kib: float
    seconds: float


def _read_one(url: str, cache_dir: Path | None, path: str) -> bytes:
    with _open(url, cache_dir) as img:
        return img.read(path)


def _counted(server: Nginx, action: Callable[[], object], since: int | None = None) -> Counted:
    """What `action` cost the server: requests and KiB since `since` (default: from now), and seconds."""
    mark = server.mark() if since is None else since
    started = time.perf_counter()
    action()
    seconds = time.perf_counter() - started
    logged = server.since(mark)
    return Counted(len(logged), sum(r.sent for r in logged) / 1024, seconds)


def _read_all(open_image: Callable[[], Image]) -> float:
    best = float("inf")
    for _ in range(ROUNDS):
        started = time.perf_counter()
        with open_image() as img:
            for _path, _data in img.read_all():
                pass
        best = min(best, time.perf_counter() - started)
    return best


def rows(tree: Path, source: Path | None = None, name: str | None = None) -> list[Row]:
    from docteur.make import make, parse_date

    with tempfile.TemporaryDirectory(prefix="bench-http-") as scratch:
        work = Path(scratch)
        image = work / "tree.img"
        make(str(source or tree), image, date=parse_date("2020-10-10T08:00:00+00:00"), quiet=True)
        first_path, other_path = two_files(image)
        served_copy(image, work / "www")
        label = f"{name or tree.name}, {image.stat().st_size / 1e6:.1f} MB image"
        with Nginx(work / "www") as server:
            url = server.url("disk.img")
            with _open(url, work / "cache") as img:  # the open's requests are the first file's too
                first = _counted(server, lambda: img.read(first_path), since=0)
                another = _counted(server, lambda: img.read(other_path))
            warm = _counted(server, lambda: _read_one(url, work / "cache", first_path))
            remote = _read_all(lambda: _open(url, None))
            local = _read_all(lambda: docteur.open(image))
            with DelayProxy(server.port, RTT) as proxy:
                slow = proxy.url("disk.img")
                slow_first = _counted(server, lambda: _read_one(slow, None, first_path))
                slow_whole = _read_all(lambda: _open(slow, None))
    ms = f"{RTT * 1000:.0f} ms RTT"
    absolute = {"relative": False}
    return [
        Row(
            f"HTTP: first small file, empty cache: requests ({label})",
            first.requests,
            unit="req",
            limit=4,
            **absolute,
        ),
        Row(
            f"HTTP: first small file, empty cache: KiB transferred ({label})",
            first.kib,
            unit="KiB",
            limit=256,
            **absolute,
        ),
        Row(
            f"HTTP: another file of the same folder: requests ({label})",
            another.requests,
            unit="req",
            limit=1,
            **absolute,
        ),
        Row(f"HTTP: read_all over loopback ({label})", remote, local, "s", "local file", limit=1.5),
        Row(
            f"HTTP: first small file with {ms}, open included ({label})",
            slow_first.seconds,
            limit=0.3,
            **absolute,
        ),
        Row(
            f"HTTP: second run, warm cache: requests ({label})",
            warm.requests,
            unit="req",
            limit=1,
            **absolute,
        ),
        Row(f"HTTP: read_all with {ms} ({label})", slow_whole, local, "s", "local file"),
    ]


if __name__ == "__main__":
    from bench import corpora

    where = Path(sys.argv[1]) if len(sys.argv) > 1 else corpora.generated("pages").tree
    print(render(rows(where)))
