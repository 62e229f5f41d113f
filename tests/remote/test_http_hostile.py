"""HttpSource against a server that misbehaves on purpose: retried where safe, else one clear error."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from docteur.bytesource.http import HttpSource
from docteur.errors import ImageChangedError, RemoteError
from remote.hostile import Hostile
from remote.loopback import free_port

BS = 32 << 10
QUICK = {"cache_dir": None, "backoff": 0.01, "timeout": 2.0}


@pytest.fixture
def data(image: Path) -> bytes:
    return image.read_bytes()


@pytest.fixture
def server(data: bytes) -> Hostile:
    with Hostile(data) as running:
        yield running


def test_a_well_behaved_run(server: Hostile, data: bytes) -> None:
    with HttpSource(server.url(), **QUICK) as src:
        assert bytes(src.read(BS - 5, 3 * BS)) == data[BS - 5 : 4 * BS - 5]
    assert [r.headers.get("Range") for r in server.state.requests] == [
        f"bytes=0-{BS - 1}",
        f"bytes={BS}-{4 * BS - 1}",
    ]
    later = server.state.requests[1].headers
    assert later["If-Range"] == '"v1"' and later["Accept-Encoding"] == "identity"


@pytest.mark.parametrize("fault", ["reset", "503", "500", "truncate", "short-length", "wrong-range"])
def test_transient_faults_are_retried(server: Hostile, data: bytes, fault: str) -> None:
    with HttpSource(server.url(), **QUICK) as src:
        server.state.faults.extend([fault, fault])
        assert bytes(src.read(5 * BS, 2 * BS)) == data[5 * BS : 7 * BS]
        assert src.requests == 1 + 3  # the contact, two failures, one success


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ("reset", "Remote end closed connection without response"),
        ("503", r"HTTP 503"),
        ("truncate", r"failed after 32768 of 65536 bytes: IncompleteRead"),
        ("short-length", "announced a 65535-byte body where 65536 were asked for"),
        ("wrong-range", "answered range 163841-229375 to a request for 163840-229375"),
        ("wrong-size", "changed on the server"),
        ("ignore-range", "answered 200 with the whole image to a range request"),
    ],
)
def test_persistent_faults_end_in_one_clear_error(server: Hostile, fault: str, message: str) -> None:
    with HttpSource(server.url(), **QUICK, retries=2) as src:
        server.state.always = fault
        with pytest.raises(RemoteError, match=message) as failed:
            src.read(5 * BS, 2 * BS)
        assert str(failed.value).startswith(server.url() + ": ")
        assert "\n" not in str(failed.value)
    expected = 1 if fault == "wrong-size" else 3  # a size that changed is not worth retrying
    assert len(server.state.requests) == 1 + expected


def test_a_server_ignoring_range_is_refused_at_first_contact(server: Hostile) -> None:
    server.state.always = "ignore-range"
    with pytest.raises(RemoteError, match="ignores Range requests"):
        HttpSource(server.url(), **QUICK)
    assert len(server.state.requests) == 1  # no retry, and the whole body was not read


def test_a_small_image_served_whole_is_fine() -> None:
    small = b"tiny image bytes" * 100
    with Hostile(small) as server:
        server.state.always = "ignore-range"
        with HttpSource(server.url(), **QUICK) as src:
            assert (src.size, bytes(src.read(0, 10_000))) == (len(small), small)


def test_content_encoding_not_asked_for_is_refused(server: Hostile) -> None:
    server.state.always = "gzip"
    with pytest.raises(RemoteError, match="Content-Encoding 'gzip', which was not asked for"):
        HttpSource(server.url(), **QUICK)


def test_a_stalled_body_times_out(server: Hostile, data: bytes) -> None:
    with HttpSource(server.url(), **{**QUICK, "timeout": 0.3}, retries=1) as src:
        server.state.always = "slow"
        started = time.monotonic()
        with pytest.raises(RemoteError, match="too slowly"):
            src.read(5 * BS, 10)
        assert time.monotonic() - started < 30  # bounded: two attempts of about 1.3 s, not the whole trickle
        server.state.always = ""
        assert bytes(src.read(5 * BS, 10)) == data[5 * BS : 5 * BS + 10]


def test_an_image_replaced_mid_read_raises_and_never_mixes(
    server: Hostile, data: bytes, other_image: Path
) -> None:
    with HttpSource(server.url(), **QUICK) as src:
        assert bytes(src.read(0, 2 * BS)) == data[: 2 * BS]
        server.state.replace(other_image.read_bytes(), '"v2"')
        with pytest.raises(ImageChangedError, match="changed on the server while being read"):
            src.read(4 * BS, 10)
        assert server.state.requests[-1].headers["If-Range"] == '"v1"'
        assert len(server.state.requests) == 3  # the contact, block 1, the changed answer: not retried


def test_an_image_replaced_behind_a_server_ignoring_if_range(server: Hostile, other_image: Path) -> None:
    with HttpSource(server.url(), **QUICK) as src:
        server.state.honour_if_range = False
        new = other_image.read_bytes()
        server.state.replace(new + b"\0" * (len(server.state.data) - len(new)), '"v2"')  # the same size
        with pytest.raises(ImageChangedError):
            src.read(4 * BS, 10)  # the 206's ETag is not the pinned one


@pytest.mark.parametrize("status", ["412", "404"])
def test_statuses_that_are_not_retried(server: Hostile, status: str) -> None:
    with HttpSource(server.url(), **QUICK) as src:
        server.state.faults.append(status)
        kind, message = (ImageChangedError, "changed") if status == "412" else (RemoteError, "no such image")
        with pytest.raises(kind, match=message):
            src.read(4 * BS, 10)
        assert len(server.state.requests) == 2


def test_redirects_are_followed_and_remembered(server: Hostile, data: bytes) -> None:
    server.state.faults.append("redirect")
    with HttpSource(server.url(), **QUICK) as src:
        assert bytes(src.read(3 * BS, 10)) == data[3 * BS : 3 * BS + 10]
    assert [r.path for r in server.state.requests] == ["/disk.img", "/moved/disk.img", "/moved/disk.img"]


def test_credentials_do_not_follow_a_redirect_to_another_host(data: bytes) -> None:
    with Hostile(data) as target, Hostile(data) as origin:
        origin.state.redirect_to = target.url("").rstrip("/")
        origin.state.faults.append("redirect")
        with HttpSource(origin.url(userinfo="reader:pw"), **QUICK) as src:
            assert bytes(src.read(5 * BS, 10)) == data[5 * BS : 5 * BS + 10]
    assert origin.state.requests[0].headers["Authorization"].startswith("Basic ")
    assert len(origin.state.requests) == 1  # later requests go where the redirect led
    assert [r.path for r in target.state.requests] == ["/moved/disk.img"] * 2
    assert not any("Authorization" in r.headers for r in target.state.requests)


def test_redirect_loops_are_bounded(server: Hostile) -> None:
    server.state.always = "redirect-loop"
    with pytest.raises(RemoteError, match="more than 3 redirects"):
        HttpSource(server.url(), **QUICK, max_redirects=3)
    assert len(server.state.requests) == 4


def test_an_unreachable_server_is_one_clear_error() -> None:
    port = free_port()
    with pytest.raises(
        RemoteError, match=rf"^http://127\.0\.0\.1:{port}/disk\.img: .*refused.* \(3 attempts\)$"
    ):
        HttpSource(f"http://user:pw@127.0.0.1:{port}/disk.img", **QUICK, retries=2)


def test_urls_that_are_not_http() -> None:
    with pytest.raises(RemoteError, match="not an http:// or https:// URL"):
        HttpSource("ftp://127.0.0.1/disk.img", **QUICK)
