"""docteur-make under hostile conditions: killed at random points, failing half-way, hostile sources.

A SIGKILL cannot be cleaned up after, but it must never leave a half-written image at the target: the
target holds the old image, or nothing, or the complete new one. Every other failure (an error, SIGTERM,
SIGINT, SIGHUP) leaves no temporary file, beside the target or in TMPDIR.
"""

from __future__ import annotations

import os
import random
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from trees import DIR, FILE, LINK, image_tree, write_tree

import docteur
from docteur.git.objects import MODE_LINK

BIN = Path(sys.executable).parent
DATE = "2020-10-10T08:00:00+00:00"
SEED = 6
KILLS = 8
# Root reads any file: without these capabilities, permissions apply to it too.
UNPRIVILEGED = [
    "setpriv",
    "--bounding-set=-dac_override,-dac_read_search",
    "--inh-caps=-dac_override,-dac_read_search",
]


def _source(root: Path, files: int, salt: bytes) -> Path:
    rng = random.Random(salt)
    spec = {
        b"d%02d/f%03d.txt" % (i % 17, i): (
            FILE,
            b"".join(b"%s %d %d\n" % (salt, i, rng.getrandbits(64)) for _ in range(200)),
        )
        for i in range(files)
    }
    write_tree(root, spec)
    return root


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(a source big enough that a make takes a while, a small one for the 'old' image)."""
    root = tmp_path_factory.mktemp("make-sources")
    return _source(root / "big", 400, b"new"), _source(root / "small", 5, b"old")


def _make(
    source: Path, target: Path, tmpdir: Path, prefix: list[str] | None = None, **popen: object
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*(prefix or []), str(BIN / "docteur-make"), "-q", str(source), str(target), "-d", DATE],
        env={**os.environ, "TMPDIR": str(tmpdir)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        **popen,  # type: ignore[arg-type]
    )


@pytest.fixture(scope="module")
def made(sources: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, bytes, float]:
    """(the new image's bytes, the old image's bytes, how long one make of the new one takes)."""
    big, small = sources
    where = tmp_path_factory.mktemp("made")
    start = time.monotonic()
    assert _make(big, where / "new.img", where).wait(120) == 0
    took = time.monotonic() - start
    assert _make(small, where / "old.img", where).wait(120) == 0
    return (where / "new.img").read_bytes(), (where / "old.img").read_bytes(), took


def test_sigkill_at_random_points_leaves_the_old_image_or_nothing(
    sources: tuple[Path, Path], made: tuple[bytes, bytes, float], tmp_path: Path
) -> None:
    new, old, took = made
    rng = random.Random(SEED)
    outcomes = {"old": 0, "absent": 0, "new": 0}
    leftovers = 0
    for i in range(KILLS):
        out, tmpdir = tmp_path / f"out{i}", tmp_path / f"tmp{i}"
        out.mkdir()
        tmpdir.mkdir()
        target = out / "disk.img"
        had_old = i % 2 == 0
        if had_old:
            target.write_bytes(old)
        proc = _make(sources[0], target, tmpdir)
        time.sleep(rng.uniform(0, took * 1.2))
        proc.kill()
        proc.wait()
        now = target.read_bytes() if target.exists() else None
        state = (
            "new" if now == new else "old" if had_old and now == old else "absent" if now is None else "torn"
        )
        assert state != "torn" and (state != "absent" or not had_old), f"kill #{i}: target is {state}"
        outcomes[state] += 1
        leftovers += len(os.listdir(tmpdir)) + len(os.listdir(out)) - (now is not None)
    print(f"SIGKILL: target {outcomes}; {leftovers} temporary files left in all (SIGKILL cannot clean up)")
    assert outcomes["old"] + outcomes["absent"] > 0  # some kills landed before the rename
    # A later make is not disturbed by what a killed one left behind.
    assert _make(sources[0], tmp_path / "out0" / "disk.img", tmp_path / "tmp0").wait(120) == 0
    assert (tmp_path / "out0" / "disk.img").read_bytes() == new


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_a_terminated_make_leaves_no_temporary_files(
    sources: tuple[Path, Path], made: tuple[bytes, bytes, float], tmp_path: Path, sig: int
) -> None:
    new, old, took = made
    rng = random.Random(f"{SEED}:{sig}")
    for i in range(3):
        out, tmpdir = tmp_path / f"out{i}", tmp_path / f"tmp{i}"
        out.mkdir()
        tmpdir.mkdir()
        (out / "disk.img").write_bytes(old)
        proc = _make(sources[0], out / "disk.img", tmpdir)
        _at_work(proc, tmpdir)  # past interpreter start-up, where a signal simply ends the process
        time.sleep(rng.uniform(0, took / 2))
        proc.send_signal(sig)
        code = proc.wait(60)
        err = proc.stderr.read().decode()  # type: ignore[union-attr]
        assert code in (0, 130), err
        assert "Traceback" not in err and len(err.splitlines()) <= 1, err
        left = [
            (p.name, p.is_dir(), sorted(os.listdir(p)) if p.is_dir() else p.stat().st_size)
            for p in tmpdir.iterdir()
        ]
        assert os.listdir(out) == ["disk.img"] and left == [], f"left in TMPDIR: {left}; stderr {err!r}"
        assert (out / "disk.img").read_bytes() == (new if code == 0 else old)


def _at_work(proc: subprocess.Popen[bytes], tmpdir: Path) -> None:
    """Wait until the make has created its scratch directory (or has finished)."""
    deadline = time.monotonic() + 60  # start-up is slow on a busy machine
    while not os.listdir(tmpdir) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)


def _file_size_limit() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 << 10, 64 << 10))


def test_a_failed_make_leaves_no_temporary_files(sources: tuple[Path, Path], tmp_path: Path) -> None:
    src = _source(tmp_path / "src", 30, b"fail")
    os.chmod(src / "d00" / "f000.txt", 0o000)
    unprivileged = UNPRIVILEGED if os.getuid() == 0 else []
    cases: list[tuple[str, Path, dict[str, object], str]] = [
        ("unreadable", src, {"prefix": unprivileged}, "Permission denied"),
        ("over the size limit", sources[0], {"preexec_fn": _file_size_limit}, "too large"),
        ("missing source", tmp_path / "missing", {}, "missing"),
        ("target in a missing directory", sources[1], {"target": tmp_path / "no" / "disk.img"}, "no"),
    ]
    for what, source, options, words in cases:
        out, tmpdir = tmp_path / f"out {what}", tmp_path / f"tmp {what}"
        out.mkdir()
        tmpdir.mkdir()
        target = options.pop("target", out / "disk.img")
        proc = _make(source, target, tmpdir, **options)  # type: ignore[arg-type]
        code, err = proc.wait(120), proc.stderr.read().decode()  # type: ignore[union-attr]
        assert code == 1, (what, err)
        assert len(err.splitlines()) == 1 and words in err and "Traceback" not in err, (what, err)
        assert os.listdir(out) == [] and os.listdir(tmpdir) == [], what


def test_symlinks_pointing_outside_are_stored_as_links_never_followed(make_image, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    write_tree(outside, {b"secret": (FILE, b"the secret that must not be packed\n"), b"sub/x": (FILE, b"x")})
    src = tmp_path / "src"
    spec = {
        b"passwd": (LINK, b"/etc/passwd"),
        b"up": (LINK, b"../outside/secret"),
        b"updir": (LINK, str(outside / "sub").encode()),
        b"etc": (LINK, b"/etc"),
        b"dangling": (LINK, b"../nowhere"),
        b"real.txt": (FILE, b"inside\n"),
    }
    write_tree(src, spec)
    image = make_image(src)
    assert image_tree(image) == spec
    with docteur.open(image) as img:
        assert img.stat("etc").mode == MODE_LINK and img.stat("updir").mode == MODE_LINK
        contents = {img.objects.get(oid)[1] for oid in img.objects}
    assert b"the secret that must not be packed\n" not in contents
    assert not any(mode == DIR for mode, _ in image_tree(image).values())
