"""The disk cache on its own and under HttpSource: damaged files are never served, failures never fatal."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from docteur.bytesource.cache import DiskCache
from docteur.bytesource.http import HttpSource
from remote.hostile import Hostile
from remote.loopback import Nginx

BS = 32 << 10


def blocks_of(cache_dir: Path) -> list[Path]:
    return sorted(p for p in (cache_dir / "blocks").rglob("*") if p.is_file())


def test_blocks_round_trip_and_damaged_ones_are_discarded(tmp_path: Path) -> None:
    cache = DiskCache(tmp_path, 1 << 20)
    key = cache.image_key("http://h/x.img", '"e"', "", 100, BS)
    cache.put(key, 3, b"three")
    cache.put(key, 4, b"four")
    cache.put(key, 5, b"five")
    assert (cache.get(key, 3), cache.get(key, 9)) == (b"three", None)
    path = tmp_path / "blocks" / key
    torn = path / "4"
    torn.write_bytes(torn.read_bytes()[:-1])
    flipped = path / "5"
    raw = bytearray(flipped.read_bytes())
    raw[-1] ^= 1
    flipped.write_bytes(bytes(raw))
    assert cache.get(key, 4) is None and not torn.exists()
    assert cache.get(key, 5) is None and not flipped.exists()
    (path / "3").rename(path / "6")  # a whole, valid file under another block's name
    assert cache.get(key, 6) is None
    assert cache.image_key("http://h/x.img", '"f"', "", 100, BS) != key


def test_crashed_writers_temporary_files_are_removed(tmp_path: Path) -> None:
    cache = DiskCache(tmp_path, 1 << 20)
    key = cache.image_key("http://h/x.img", '"e"', "", 100, BS)
    cache.put(key, 0, b"zero")
    old, fresh = tmp_path / "blocks" / key / ".tmp-old", tmp_path / "blocks" / key / ".tmp-fresh"
    old.write_bytes(b"half")
    fresh.write_bytes(b"being written")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    assert cache.usage() == (tmp_path / "blocks" / key / "0").stat().st_size
    assert not old.exists() and fresh.exists()


def test_damaged_cache_files_are_refetched(nginx: Nginx, image: Path, cache_dir: Path) -> None:
    data = image.read_bytes()
    with HttpSource(nginx.url("disk.img"), cache_dir=cache_dir) as src:
        src.read(0, len(data))
    files = blocks_of(cache_dir)
    assert len(files) == -(-len(data) // BS)
    files[3].write_bytes(files[3].read_bytes()[:100])
    (cache_dir / "pins").joinpath(os.listdir(cache_dir / "pins")[0]).write_text("{not json")
    mark = nginx.mark()
    with HttpSource(nginx.url("disk.img"), cache_dir=cache_dir) as src:
        assert bytes(src.read(0, len(data))) == data
    # The pin unreadable: a fresh contact (block 0); the torn block fetched again; the rest from the cache.
    assert [(r.status, r.sent) for r in nginx.since(mark)] == [(206, BS), (206, BS)]


def test_an_unusable_cache_dir_is_not_fatal(nginx: Nginx, image: Path, tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    data = image.read_bytes()
    with HttpSource(nginx.url("disk.img"), cache_dir=not_a_dir / "cache") as src:
        assert bytes(src.read(0, len(data))) == data


def test_nothing_is_cached_for_an_image_without_validators(image: Path, cache_dir: Path) -> None:
    data = image.read_bytes()
    with Hostile(data) as server:
        server.state.etag = server.state.last_modified = ""
        with HttpSource(server.url(), cache_dir=cache_dir) as src:
            assert bytes(src.read(0, 3 * BS)) == data[: 3 * BS]
            assert "If-Range" not in server.state.requests[-1].headers
    assert blocks_of(cache_dir) == []


def test_a_cache_needs_a_positive_cap(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="positive cap"):
        DiskCache(tmp_path, 0)
