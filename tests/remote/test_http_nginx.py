"""HttpSource against nginx on 127.0.0.1: exact bytes, few requests, the disk cache, credentials, TLS."""

from __future__ import annotations

import logging
import os
import random
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from trees import read_image_tree

import docteur
from docteur.bytesource.cache import DiskCache, default_dir
from docteur.bytesource.http import HttpSource
from docteur.errors import ImageChangedError, RemoteError
from remote.loopback import DelayProxy, Nginx, self_signed

BS = 32 << 10


def replace(path: Path, new: Path, mtime: float) -> None:
    """Replace the served file as a publisher would: a new file renamed over it (never written in place)."""
    temp = path.with_name(path.name + ".new")
    shutil.copyfile(new, temp)
    os.utime(temp, (mtime, mtime))
    os.replace(temp, path)


def ranges(nginx: Nginx, mark: int) -> list[tuple[int, int]]:
    """The (first, last) byte ranges nginx answered since `mark`."""
    out = []
    for r in nginx.since(mark):
        first, _, last = r.range.removeprefix("bytes=").partition("-")
        out.append((int(first), int(last)))
    return out


def test_random_reads_are_byte_exact(nginx: Nginx, image: Path, cache_dir: Path) -> None:
    data = image.read_bytes()
    rng = random.Random(7)
    with HttpSource(
        nginx.url("disk.img"), cache_dir=cache_dir, block_size=4096, memory_bytes=64 << 10
    ) as src:
        assert (src.size, src.name) == (len(data), nginx.url("disk.img"))
        for _ in range(300):
            offset = rng.randrange(len(data) + 10)
            length = rng.choice([0, 1, 28, 4095, 4096, 4097, rng.randrange(1, 100_000)])
            assert bytes(src.read(offset, length)) == data[offset : offset + length], (offset, length)
        assert bytes(src.read(len(data) - 3, 100)) == data[-3:]
        assert src.read(len(data), 1) == b""
        with pytest.raises(ValueError):
            src.read(-1, 5)
    with pytest.raises(ValueError, match="closed"):
        src.read(0, 1)


def test_first_contact_is_one_range_request_and_pins(nginx: Nginx) -> None:
    with HttpSource(nginx.url("disk.img"), cache_dir=None) as src:
        header = bytes(src.read(0, 28))
        (first,) = nginx.log()
        assert (first.status, first.range, first.sent) == (206, f"bytes=0-{BS - 1}", BS)
        assert src.requests == 1 and len(header) == 28
        assert src.pin.etag.startswith('"') and src.pin.last_modified
        src.read(5 * BS + 10, 100)
        last = nginx.log()[-1]
        assert last.if_range == src.pin.etag  # every later request is conditional on the pin


def test_missing_blocks_of_one_read_are_one_request(nginx: Nginx, image: Path) -> None:
    data = image.read_bytes()
    with HttpSource(nginx.url("disk.img"), cache_dir=None) as src:
        mark = nginx.mark()
        assert bytes(src.read(3 * BS + 100, 5 * BS)) == data[3 * BS + 100 : 8 * BS + 100]
        assert ranges(nginx, mark) == [(3 * BS, 9 * BS - 1)]  # blocks 3..8, one request
        mark = nginx.mark()
        src.read(2 * BS, 8 * BS)  # blocks 2..9: only 2 and 9 are missing, two separate runs
        assert sorted(ranges(nginx, mark)) == [(2 * BS, 3 * BS - 1), (9 * BS, 10 * BS - 1)]


def test_random_access_does_not_read_ahead(nginx: Nginx, image: Path) -> None:
    size = image.stat().st_size
    blocks = list(range(2, size // BS, 3))
    random.Random(3).shuffle(blocks)
    with HttpSource(nginx.url("disk.img"), cache_dir=None) as src:
        mark = nginx.mark()
        for b in blocks:
            src.read(b * BS + 7, 10)
        assert sorted(ranges(nginx, mark)) == sorted((b * BS, b * BS + BS - 1) for b in blocks)


def test_sequential_reads_read_ahead_in_few_requests(nginx: Nginx, image: Path) -> None:
    data = image.read_bytes()
    with HttpSource(nginx.url("disk.img"), cache_dir=None) as src:
        mark = nginx.mark()
        out = b"".join(bytes(src.read(o, 4096)) for o in range(0, len(data), 4096))
        assert out == data
        logged = nginx.since(mark)
        # Without read-ahead: one request per 32 KiB block; with it the requests grow towards 1 MiB.
        assert len(logged) < len(data) // BS // 3, len(logged)
        assert max(r.sent for r in logged) >= 4 * BS
        assert sum(r.sent for r in logged) <= len(data)  # no byte fetched twice


def test_prefetch_in_image_order_fetches_each_byte_once_in_large_requests(nginx: Nginx, image: Path) -> None:
    data = image.read_bytes()
    pieces = [(o, 3000) for o in range(0, len(data), 3000)]
    with HttpSource(nginx.url("disk.img"), cache_dir=None, request_bytes=256 << 10) as src:
        mark = nginx.mark()
        src.prefetch(iter(pieces))
        out = b"".join(bytes(src.read(o, n)) for o, n in pieces)
        assert out == data
        got = sorted(ranges(nginx, mark))
        assert len(got) <= -(-len(data) // (256 << 10)) + 1
        covered = [b for first, last in got for b in range(first, last + 1, BS)]
        assert len(covered) == len(set(covered))  # no block twice
        assert sum(last + 1 - first for first, last in got) <= len(data)


def test_memory_stays_bounded_while_prefetching_everything(nginx: Nginx, image: Path) -> None:
    data = image.read_bytes()
    bound = 8 * 4096
    with HttpSource(
        nginx.url("disk.img"), cache_dir=None, block_size=4096, memory_bytes=bound, request_bytes=8192
    ) as src:
        src.prefetch([(0, len(data))])
        for o in range(0, len(data), 1000):
            assert bytes(src.read(o, 1000)) == data[o : o + 1000]
            assert src.held_bytes <= bound
        src.release()
        assert src.held_bytes == 0
        assert bytes(src.read(100, 10)) == data[100:110]


def test_second_source_reads_from_the_disk_cache_with_one_conditional_request(
    nginx: Nginx, image: Path, cache_dir: Path
) -> None:
    data = image.read_bytes()
    with HttpSource(nginx.url("disk.img"), cache_dir=cache_dir) as src:
        assert bytes(src.read(0, len(data))) == data
    mark = nginx.mark()
    with HttpSource(nginx.url("disk.img"), cache_dir=cache_dir) as src:
        assert bytes(src.read(0, len(data))) == data
    (check,) = nginx.since(mark)
    assert (check.status, check.if_none_match, check.sent) == (304, src.pin.etag, 0)
    mark = nginx.mark()
    with HttpSource(nginx.url("disk.img"), cache_dir=cache_dir, max_age=3600) as src:
        assert bytes(src.read(0, len(data))) == data
    assert nginx.since(mark) == []  # a pin younger than max_age is trusted: no request at all
    mark = nginx.mark()
    with HttpSource(nginx.url("disk.img"), cache_dir=None) as src:  # no disk cache: everything again
        assert bytes(src.read(0, len(data))) == data
    assert sum(r.sent for r in nginx.since(mark)) == len(data)


READER = """
import hashlib, sys
from docteur.bytesource.http import HttpSource
url, cache, seed = sys.argv[1:]
import random
rng = random.Random(int(seed))
with HttpSource(url, cache_dir=cache, block_size=4096) as src:
    whole = bytearray(src.size)
    order = list(range(0, src.size, 5000))
    rng.shuffle(order)
    for o in order:
        piece = bytes(src.read(o, 5000))
        whole[o : o + len(piece)] = piece
    print(hashlib.sha256(whole).hexdigest(), src.requests)
"""


def test_processes_share_the_cache_at_once_and_later(nginx: Nginx, image: Path, cache_dir: Path) -> None:
    import hashlib

    expected = hashlib.sha256(image.read_bytes()).hexdigest()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", READER, nginx.url("disk.img"), str(cache_dir), str(seed)],
            stdout=subprocess.PIPE,
            env=env,
        )
        for seed in range(3)
    ]
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0
        assert out.split()[0].decode() == expected
    mark = nginx.mark()
    run = subprocess.run(
        [sys.executable, "-c", READER, nginx.url("disk.img"), str(cache_dir), "9"],
        capture_output=True,
        env=env,
        timeout=120,
        check=True,
    )
    assert run.stdout.split() == [expected.encode(), b"1"]
    assert [r.status for r in nginx.since(mark)] == [304]


def test_disk_cache_keeps_its_cap_evicting_the_least_recently_used(
    nginx: Nginx, image: Path, cache_dir: Path
) -> None:
    data = image.read_bytes()
    cap = 16 * BS
    tail = len(data) - 8 * BS
    with HttpSource(nginx.url("disk.img"), cache_dir=cache_dir, cache_bytes=cap) as src:
        src.read(0, tail)
    # Those blocks were used an hour ago (file times are too coarse to order blocks written in one go).
    hour_ago = time.time() - 3600
    for block in (cache_dir / "blocks").rglob("*"):
        os.utime(block, (hour_ago, hour_ago))
    with HttpSource(nginx.url("disk.img"), cache_dir=cache_dir, cache_bytes=cap) as src:
        src.read(tail, len(data))
    assert DiskCache(cache_dir, cap).usage() <= cap + cap // 8
    mark = nginx.mark()
    with HttpSource(nginx.url("disk.img"), cache_dir=cache_dir, cache_bytes=cap) as src:
        assert bytes(src.read(tail, len(data))) == data[tail:]  # the most recent blocks are all there
        assert [r.status for r in nginx.since(mark)] == [304]
        assert bytes(src.read(0, tail)) == data[:tail]  # most of the older ones were evicted
        assert sum(r.sent for r in nginx.since(mark)) >= tail - cap


def test_default_cache_dir_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, nginx: Nginx) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_dir() == tmp_path / "xdg" / "docteur"
    with HttpSource(nginx.url("disk.img")) as src:
        src.read(0, 10)
    assert (tmp_path / "xdg" / "docteur" / "CACHEDIR.TAG").exists()
    assert any((tmp_path / "xdg" / "docteur" / "blocks").rglob("*"))
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/path")  # ignored, as the XDG spec says
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_dir() == tmp_path / "home" / ".cache" / "docteur"


def test_a_replaced_image_is_read_afresh_never_from_stale_blocks(
    nginx: Nginx, root: Path, image: Path, other_image: Path, cache_dir: Path
) -> None:
    with HttpSource(nginx.url("disk.img"), cache_dir=cache_dir) as src:
        src.read(0, src.size)
    replace(root / "disk.img", other_image, 1_700_000_000)
    new = other_image.read_bytes()
    with HttpSource(nginx.url("disk.img"), cache_dir=cache_dir) as src:
        assert src.size == len(new)
        assert bytes(src.read(0, len(new))) == new


def test_an_image_replaced_while_read_is_a_clear_error(
    nginx: Nginx, root: Path, image: Path, other_image: Path
) -> None:
    data = image.read_bytes()
    with HttpSource(nginx.url("disk.img"), cache_dir=None) as src:
        assert bytes(src.read(0, 2 * BS)) == data[: 2 * BS]
        replace(root / "disk.img", other_image, 1_600_000_000)
        assert bytes(src.read(0, 2 * BS)) == data[: 2 * BS]  # what it holds is the old image's, consistently
        with pytest.raises(ImageChangedError, match="changed on the server"):
            src.read(10 * BS, 100)


def test_basic_auth_from_the_url_and_never_shown(
    root: Path, image: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = image.read_bytes()
    caplog.set_level(logging.DEBUG)
    with Nginx(root, users={"reader": "s3cr%t"}) as server:
        with HttpSource(server.url("disk.img", "reader:s3cr%25t"), cache_dir=None) as src:
            assert bytes(src.read(1000, 5000)) == data[1000:6000]
            assert "s3cr" not in src.name and "reader" not in src.name
        with pytest.raises(RemoteError, match="authentication") as refused:
            HttpSource(server.url("disk.img", "reader:wrong-pass"), cache_dir=None)
        assert "wrong-pass" not in str(refused.value) and "reader" not in str(refused.value)
        with pytest.raises(RemoteError, match=r"HTTP 401"):
            HttpSource(server.url("disk.img"), cache_dir=None, netrc=False)
    assert not any("s3cr" in r.getMessage() or "wrong-pass" in r.getMessage() for r in caplog.records)


def test_basic_auth_from_netrc(
    root: Path, image: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("NETRC", raising=False)
    netrc = home / ".netrc"
    netrc.write_text("machine 127.0.0.1 login reader password from-netrc\n")
    netrc.chmod(0o600)
    data = image.read_bytes()
    with Nginx(root, users={"reader": "from-netrc"}) as server:
        with HttpSource(server.url("disk.img"), cache_dir=None) as src:
            assert bytes(src.read(0, 100)) == data[:100]
        with pytest.raises(RemoteError, match="HTTP 401"):
            HttpSource(server.url("disk.img"), cache_dir=None, netrc=False)
        netrc.write_text("machine 127.0.0.1 login reader password from-netrc\nnonsense\n")  # malformed
        with pytest.raises(RemoteError, match=r"\.netrc") as broken:
            HttpSource(server.url("disk.img"), cache_dir=None)
        assert "from-netrc" not in str(broken.value)


def test_tls_is_verified_by_default(root: Path, image: Path, tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    data = image.read_bytes()
    with Nginx(root, tls=(cert, key)) as server:
        with pytest.raises(RemoteError, match=r"TLS failed: .*certificate verify failed"):
            HttpSource(server.url("disk.img"), cache_dir=None)
        with HttpSource(server.url("disk.img"), cache_dir=None, ca_certs=str(cert)) as src:
            assert bytes(src.read(50_000, 70_000)) == data[50_000:120_000]


def test_threads_reading_at_once_while_prefetching(nginx: Nginx, image: Path, cache_dir: Path) -> None:
    data = image.read_bytes()
    failures: list[str] = []
    with HttpSource(
        nginx.url("disk.img"), cache_dir=cache_dir, block_size=4096, memory_bytes=64 << 10
    ) as src:
        src.prefetch([(0, len(data))])

        def reader(seed: int) -> None:
            rng = random.Random(seed)
            for _ in range(150):
                offset, length = rng.randrange(len(data)), rng.randrange(1, 20_000)
                if bytes(src.read(offset, length)) != data[offset : offset + length]:
                    failures.append(f"{offset}+{length}")

        threads = [threading.Thread(target=reader, args=(seed,)) for seed in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert not any(t.is_alive() for t in threads)
    assert failures == []


def test_reads_through_the_delaying_proxy(nginx: Nginx, image: Path) -> None:
    data = image.read_bytes()
    with DelayProxy(nginx.port, rtt=0.01) as proxy, HttpSource(proxy.url("disk.img"), cache_dir=None) as src:
        src.prefetch([(0, len(data))])
        assert bytes(src.read(0, len(data))) == data
        assert bytes(src.read(12345, 54321)) == data[12345 : 12345 + 54321]


def test_the_reader_over_http_reads_what_it_reads_locally(nginx: Nginx, image: Path, cache_dir: Path) -> None:
    with docteur.open(image) as local:
        expected = read_image_tree(local)
        everything = dict(local.read_all())
    with docteur.open(HttpSource(nginx.url("disk.img"), cache_dir=cache_dir)) as remote:
        assert read_image_tree(remote) == expected
        assert dict(remote.read_all()) == everything
    mark = nginx.mark()
    with docteur.open(HttpSource(nginx.url("disk.img"), cache_dir=cache_dir)) as again:
        assert again.read("small.txt") == b"a small file\n"
    assert [r.status for r in nginx.since(mark)] == [304]
