"""Delta updates (issue 12): docteur delta and docteur patch rebuild NEW bit for bit from OLD, on real
repositories at HEAD~k, on directories made with --base, from devices; and refuse the wrong base, a
damaged update or a full disk with one line, writing nothing and leaving OLD as it was."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import BIN, DATE, run_cli
from hostile.update_cases import with_section
from trees import FILE, write_tree

import docteur
from bench.corpora import SHARED
from docteur.errors import UpdateError
from docteur.make import make, parse_date
from docteur.update.apply import check_update
from docteur.update.parts import ImageParts
from docteur.verify import verify

CORPORA = ["ohmyzsh", "icons", "peps"]
BACK = [1, 10, 100]
WHEN = parse_date(DATE)


def _commit(repo: Path, rev: str) -> str:
    done = subprocess.run(["git", f"--git-dir={repo}", "rev-parse", rev], capture_output=True, text=True)
    return done.stdout.strip()


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[int, Path]]:
    """Images of each shared repository at HEAD~k (k = 0 is HEAD), made with make(repo, branch=id)."""
    if not all((SHARED / f"{name}.git").is_dir() for name in CORPORA):
        pytest.skip(f"the shared repositories are not in {SHARED}")
    where = tmp_path_factory.mktemp("real")
    images: dict[str, dict[int, Path]] = {}
    for name in CORPORA:
        repo = SHARED / f"{name}.git"
        images[name] = {}
        for k in [0, *BACK]:
            out = where / f"{name}-{k}.img"
            make(str(repo), out, branch=_commit(repo, f"HEAD~{k}"), quiet=True)
            images[name][k] = out
    return images


@pytest.mark.parametrize("k", BACK)
@pytest.mark.parametrize("name", CORPORA)
def test_round_trip_on_real_repositories(
    real: dict[str, dict[int, Path]], name: str, k: int, tmp_path: Path
) -> None:
    old, new = real[name][k], real[name][0]
    update, rebuilt = tmp_path / "u.update", tmp_path / "new.img"
    made = docteur.delta(old, new, update)
    before = _sha(old)
    docteur.patch(old, update, rebuilt)
    assert rebuilt.read_bytes() == new.read_bytes()
    assert _sha(old) == before and verify(str(rebuilt)).ok
    assert made.copied_entries + made.shipped_entries == made.objects
    assert made.copied_entries > 0 and made.size < new.stat().st_size
    with update.open("rb") as f:
        header, _, _ = check_update(f)
    with ImageParts(old) as o, ImageParts(new) as n:
        assert (header.old_commit, header.new_commit) == (o.commit, n.commit)
        assert (header.old_sha256, header.new_sha256) == (o.sha256(), n.sha256())
    assert set(os.listdir(tmp_path)) == {"u.update", "new.img"}  # no temporary file left


def test_an_image_against_itself_ships_nothing(real: dict[str, dict[int, Path]], tmp_path: Path) -> None:
    image = real["peps"][0]
    made = docteur.delta(image, image, tmp_path / "same.update")
    assert made.shipped_entries == 0 and made.size < 400
    docteur.patch(image, tmp_path / "same.update", tmp_path / "same.img")
    assert (tmp_path / "same.img").read_bytes() == image.read_bytes()


def test_images_without_an_index(tmp_path: Path) -> None:
    repo = SHARED / "ohmyzsh.git"
    if not repo.is_dir():
        pytest.skip("no shared repositories")
    old, new = tmp_path / "old.img", tmp_path / "new.img"
    make(str(repo), old, branch=_commit(repo, "HEAD~10"), index=False, quiet=True)
    make(str(repo), new, index=False, block_size=4096, quiet=True)
    docteur.delta(old, new, tmp_path / "u")
    docteur.patch(old, tmp_path / "u", tmp_path / "out.img")
    assert (tmp_path / "out.img").read_bytes() == new.read_bytes()


def test_old_may_be_zero_padded_like_a_vm_disk(real: dict[str, dict[int, Path]], tmp_path: Path) -> None:
    old, new = real["icons"][10], real["icons"][0]
    docteur.delta(old, new, tmp_path / "u")
    padded = tmp_path / "disk.raw"
    padded.write_bytes(old.read_bytes() + bytes(3 << 20) + bytes(123))
    docteur.patch(padded, tmp_path / "u", tmp_path / "out.img")
    assert (tmp_path / "out.img").read_bytes() == new.read_bytes()


@pytest.fixture
def loop_devices(tmp_path: Path) -> Iterator[list[Path]]:
    """Two loop devices over files of tmp_path, when this machine lets us make them (root)."""
    if os.getuid() != 0 or shutil.which("losetup") is None:
        pytest.skip("loop devices need root and losetup")
    made: list[Path] = []
    try:
        for i in range(2):
            backing = tmp_path / f"backing-{i}"
            backing.write_bytes(bytes(16 << 20))
            done = subprocess.run(
                ["losetup", "--find", "--show", str(backing)], capture_output=True, text=True
            )
            if done.returncode != 0:
                pytest.skip(f"losetup: {done.stderr.strip()}")
            made.append(Path(done.stdout.strip()))
        yield made
    finally:
        for device in made:
            subprocess.run(["losetup", "-d", str(device)], check=False)


def test_from_a_block_device_to_a_block_device(
    real: dict[str, dict[int, Path]], loop_devices: list[Path], tmp_path: Path
) -> None:
    """The A/B partition case: OLD on one device, NEW written in place on the other, header last."""
    old, new = real["ohmyzsh"][1], real["ohmyzsh"][0]
    a, b = loop_devices
    with a.open("r+b") as dev:
        dev.write(old.read_bytes())
    docteur.delta(old, new, tmp_path / "u")
    docteur.patch(a, tmp_path / "u", b)
    data = new.read_bytes()
    with b.open("rb") as dev:
        assert dev.read(len(data)) == data
    with docteur.open(b) as img:
        assert img.commit == _commit(SHARED / "ohmyzsh.git", "HEAD")
    with pytest.raises(UpdateError, match="OLD itself"):
        docteur.patch(a, tmp_path / "u", a)


def test_patch_may_replace_old_itself(real: dict[str, dict[int, Path]], tmp_path: Path) -> None:
    disk = tmp_path / "disk.img"
    shutil.copy(real["peps"][10], disk)
    docteur.delta(disk, real["peps"][0], tmp_path / "u")
    docteur.patch(disk, tmp_path / "u", disk)
    assert disk.read_bytes() == real["peps"][0].read_bytes()
    assert sorted(os.listdir(tmp_path)) == ["disk.img", "u"]


def _refused(args: list[object], words: str, where: Path) -> None:
    done = run_cli("docteur", "patch", *args)
    err = done.stderr.decode()
    assert done.returncode == 1, err
    assert len(err.splitlines()) == 1 and words in err and "Traceback" not in err, err
    assert not any(name.endswith(".tmp") for name in os.listdir(where)), os.listdir(where)


def test_the_wrong_base_is_refused_before_anything_is_written(
    real: dict[str, dict[int, Path]], tmp_path: Path
) -> None:
    repo = SHARED / "ohmyzsh.git"
    old, new = real["ohmyzsh"][10], real["ohmyzsh"][0]
    update = tmp_path / "u"
    docteur.delta(old, new, update)
    out = tmp_path / "out.img"
    sums = {p: _sha(p) for p in (real["ohmyzsh"][1], old)}
    _refused([real["ohmyzsh"][1], update, "-o", out], _commit(repo, "HEAD~1"), tmp_path)
    # The same commit, other bytes (another block size): named as such.
    other = tmp_path / "other.img"
    make(str(repo), other, branch=_commit(repo, "HEAD~10"), block_size=4096, quiet=True)
    _refused([other, update, "-o", out], "other bytes", tmp_path)
    _refused([tmp_path / "missing.img", update, "-o", out], "No such file", tmp_path)
    assert not out.exists() and sums == {p: _sha(p) for p in sums}


def test_a_truncated_or_altered_update_is_refused(real: dict[str, dict[int, Path]], tmp_path: Path) -> None:
    old, new = real["peps"][100], real["peps"][0]
    update = tmp_path / "u"
    docteur.delta(old, new, update)
    data = update.read_bytes()
    out = tmp_path / "out.img"
    before = _sha(old)
    for n, damaged in enumerate(
        [data[:0], data[:7], data[:100], data[: len(data) // 2], data[:-1], data + b"\0"]
        + [
            data[:i] + bytes([data[i] ^ 0x10]) + data[i + 1 :]
            for i in (9, 150, len(data) // 3, len(data) - 3)
        ]
    ):
        case = tmp_path / f"case-{n}"
        case.write_bytes(damaged)
        words = "not a docteur update" if len(damaged) < 8 else "update"
        _refused([old, case, "-o", out], words, tmp_path)
    assert not out.exists() and _sha(old) == before


def _limit_file_size() -> None:
    import resource
    import signal

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))


def test_a_full_disk_leaves_nothing(real: dict[str, dict[int, Path]], tmp_path: Path) -> None:
    """Past a file-size limit (a write fails half-way) and, as root, on a small tmpfs (refused up front)."""
    old, new = real["peps"][1], real["peps"][0]
    update = tmp_path / "u"
    docteur.delta(old, new, update)
    out = tmp_path / "out"
    out.mkdir()
    done = subprocess.run(
        [str(BIN / "docteur"), "patch", str(old), str(update), "-o", str(out / "new.img")],
        capture_output=True,
        preexec_fn=_limit_file_size,
    )
    err = done.stderr.decode()
    assert done.returncode == 1 and len(err.splitlines()) == 1 and "too large" in err, err
    assert os.listdir(out) == []
    if os.getuid() != 0:
        return
    small = tmp_path / "small"
    small.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(small)], check=False)
    if mounted.returncode != 0:
        return
    try:
        _refused([old, update, "-o", small / "new.img"], "no space left on device", small)
        assert os.listdir(small) == []
    finally:
        subprocess.run(["umount", str(small)], check=True)


def _patch_process(old: Path, update: Path, out: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(BIN / "docteur"), "patch", str(old), str(update), "-o", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def test_sigkill_at_random_points_leaves_old_nothing_or_new(
    real: dict[str, dict[int, Path]], tmp_path: Path
) -> None:
    import random
    import time

    old, new = real["icons"][100], real["icons"][0]
    update = tmp_path / "u"
    docteur.delta(old, new, update)
    start = time.monotonic()
    assert _patch_process(old, update, tmp_path / "timed.img").wait(120) == 0
    took = time.monotonic() - start
    rng = random.Random(12)
    before, wanted = _sha(old), new.read_bytes()
    outcomes = {"absent": 0, "new": 0, "kept": 0}
    for i in range(8):
        where = tmp_path / f"kill-{i}"
        where.mkdir()
        target = where / ("disk.img" if i % 2 else "old.img")
        if i % 2 == 0:  # patching OLD in place: the target holds OLD until the rename
            shutil.copy(old, target)
        proc = _patch_process(target if i % 2 == 0 else old, update, target)
        time.sleep(rng.uniform(0, took))
        proc.kill()
        proc.wait()
        now = target.read_bytes() if target.exists() else None
        if now is None:
            assert i % 2, f"kill #{i}: OLD vanished"
            outcomes["absent"] += 1
        elif now == wanted:
            outcomes["new"] += 1
        else:
            assert i % 2 == 0 and hashlib.sha256(now).hexdigest() == before, f"kill #{i}: target is torn"
            outcomes["kept"] += 1
    print(f"SIGKILL during patch: {outcomes}")
    assert outcomes["absent"] + outcomes["kept"] > 0
    assert _sha(old) == before
    # The next patch removes what the killed ones left beside their target.
    for i in range(8):
        where = tmp_path / f"kill-{i}"
        target = where / ("disk.img" if i % 2 else "old.img")
        base = target if i % 2 == 0 and target.read_bytes() != wanted else old
        assert _patch_process(base, update, target).wait(120) == 0
        assert os.listdir(where) == [target.name] and target.read_bytes() == wanted


def test_a_terminated_patch_leaves_no_temporary_file(
    real: dict[str, dict[int, Path]], tmp_path: Path
) -> None:
    import signal
    import time

    old, new = real["icons"][100], real["icons"][0]
    update = tmp_path / "u"
    docteur.delta(old, new, update)
    out = tmp_path / "out"
    out.mkdir()
    proc = _patch_process(old, update, out / "new.img")
    deadline = time.monotonic() + 60
    while not os.listdir(out) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)  # the temporary file exists: the patch is at work
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(60)
    err = proc.stderr.read().decode()  # type: ignore[union-attr]
    assert code in (0, 130) and "Traceback" not in err, err
    assert os.listdir(out) == ([] if code else ["new.img"])


def _directory(root: Path, files: int) -> Path:
    write_tree(
        root,
        {
            b"d%02d/f%04d.txt" % (i % 23, i): (
                FILE,
                b"".join(b"file %d line %d\n" % (i, n) for n in range(80)),
            )
            for i in range(files)
        },
    )
    return root


def test_make_with_a_base_keeps_old_entries_and_order(tmp_path: Path) -> None:
    """One file changed between two makes of a directory: with --base the update ships that file, its
    directories and the commit, and copies the rest in a few runs."""
    src = _directory(tmp_path / "src", 600)
    old, new, again = tmp_path / "old.img", tmp_path / "new.img", tmp_path / "again.img"
    make(str(src), old, date=WHEN, quiet=True)
    changed = src / "d05" / "f0005.txt"
    changed.write_bytes(changed.read_bytes().replace(b"line 40", b"line forty"))
    make(str(src), new, date=WHEN, quiet=True, base=old)
    make(str(src), again, date=WHEN, quiet=True, base=old)
    assert new.read_bytes() == again.read_bytes()  # reproducible: same source, same base
    assert verify(str(new)).ok
    made = docteur.delta(old, new, tmp_path / "u")
    assert made.shipped_entries <= 4  # the blob, its directory, the root, the commit
    assert made.size <= 2 * len(zlib.compress(changed.read_bytes())) + 4096
    docteur.patch(old, tmp_path / "u", tmp_path / "out.img")
    assert (tmp_path / "out.img").read_bytes() == new.read_bytes()
    with docteur.open(new) as img:
        assert img.read("d05/f0005.txt") == changed.read_bytes()


def _keepable(old: ImageParts, new: ImageParts, k: int) -> bool:
    if k < 0:
        return False
    base = old.pack.entry_header(old.offsets[k])[3]
    if isinstance(base, int):
        base = old.oid(old.ordinal_at(base))
    return base is None or new.ordinal_of(base) >= 0


def test_make_with_a_base_from_a_repository(real: dict[str, dict[int, Path]], tmp_path: Path, cli) -> None:
    repo = SHARED / "peps.git"
    out = tmp_path / "based.img"
    done = cli("docteur-make", "-q", repo, out, "--base", real["peps"][10])
    assert done.returncode == 0, done.stderr
    assert verify(str(out)).ok
    with ImageParts(real["peps"][10]) as o, ImageParts(out) as n:
        keepable = sum(_keepable(o, n, o.ordinal_of(n.oid(j))) for j in range(n.count))
    made = docteur.delta(real["peps"][10], out, tmp_path / "u")
    # Every object OLD holds keeps OLD's entry, unless that entry is a delta whose base NEW lacks.
    assert made.copied_entries == keepable > 0.9 * made.objects
    done = cli("docteur-make", "-q", repo, tmp_path / "x.img", "--base", tmp_path / "missing.img")
    assert done.returncode == 1 and b"missing.img" in done.stderr and len(done.stderr.splitlines()) == 1


def test_a_section_the_pack_cannot_give_is_carried(real: dict[str, dict[int, Path]], tmp_path: Path) -> None:
    blocks = [bytes([i]) * (64 << 10) for i in range(1, 6)]
    old, new = tmp_path / "old.img", tmp_path / "new.img"
    with_section(real["ohmyzsh"][1], old, 200, b"".join(blocks))
    with_section(real["ohmyzsh"][0], new, 200, b"".join([*blocks[:2], os.urandom(1000), *blocks[3:]]))
    made = docteur.delta(old, new, tmp_path / "u")
    plain = docteur.delta(real["ohmyzsh"][1], real["ohmyzsh"][0], tmp_path / "plain")
    assert made.size < plain.size + 1000 + 200  # four blocks copied, the 1000 new bytes shipped
    docteur.patch(old, tmp_path / "u", tmp_path / "out.img")
    assert (tmp_path / "out.img").read_bytes() == new.read_bytes()


def test_large_and_binary_objects_round_trip(tmp_path: Path) -> None:
    """Objects over the in-memory bound ship as they are, streamed; random bytes too."""
    src = tmp_path / "src"
    big = b"".join(b"record %d\n" % i for i in range(600_000))  # ~6.5 MB, over INLINE_MAX
    write_tree(src, {b"big.log": (FILE, big), b"noise.bin": (FILE, os.urandom(300_000))})
    old, new = tmp_path / "old.img", tmp_path / "new.img"
    make(str(src), old, date=WHEN, quiet=True)
    write_tree(src, {b"big.log": (FILE, big + b"one more\n"), b"noise.bin": (FILE, os.urandom(300_000))})
    make(str(src), new, date=WHEN, quiet=True)
    docteur.delta(old, new, tmp_path / "u")
    docteur.patch(old, tmp_path / "u", tmp_path / "out.img")
    assert (tmp_path / "out.img").read_bytes() == new.read_bytes()


def test_cli_and_info(real: dict[str, dict[int, Path]], tmp_path: Path, cli) -> None:
    repo = SHARED / "icons.git"
    old, new, update = real["icons"][1], real["icons"][0], tmp_path / "1.update"
    done = cli("docteur", "delta", old, new, "-o", update)
    assert done.returncode == 0 and b"entries copied" in done.stderr, done.stderr
    shown = cli("docteur", "info", update).stdout.decode()
    assert _commit(repo, "HEAD~1") in shown and _commit(repo, "HEAD") in shown and "copied\t:" in shown
    import json

    info = json.loads(cli("docteur", "info", "--json", update).stdout)
    assert info["new"]["commit"] == _commit(repo, "HEAD") and info["size"] == update.stat().st_size
    assert info["copied"]["entries"] + info["shipped"]["entries"] == info["new"]["objects"]
    assert cli("docteur", "patch", old, update, "-o", tmp_path / "n.img").returncode == 0
    assert (tmp_path / "n.img").read_bytes() == new.read_bytes()
    # Other spellings go through typer: the same command, the same one-line usage errors.
    assert cli("docteur", "patch", "--output", tmp_path / "t.img", old, update).returncode == 0
    assert (tmp_path / "t.img").read_bytes() == new.read_bytes()
    usage = cli("docteur", "patch", old, update)
    assert usage.returncode == 2 and len(usage.stderr.splitlines()) == 1 and b"--output" in usage.stderr
    bad = cli("docteur", "delta", old, tmp_path / "missing.img", "-o", tmp_path / "x")
    assert bad.returncode == 1 and len(bad.stderr.splitlines()) == 1 and not (tmp_path / "x").exists()


def test_import_docteur_stays_cheap() -> None:
    done = subprocess.run(
        [sys.executable, "-c", "import sys, docteur; print(sorted(m for m in sys.modules if 'update' in m))"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "[]"


def test_images_of_several_refs(tmp_path: Path) -> None:
    """A refs section (several roots in the path index): carried, and the path index rebuilt from the
    roots the update names, in the refs' order."""
    from gitservers import make_repo

    repo = make_repo(
        tmp_path / "repo.git", {"a.txt": b"alpha\n" * 300, "b/c.txt": b"gamma\n" * 200}, commits=4
    )
    for name, rev in (("feature", "HEAD~1"), ("old-main", "HEAD~2")):
        subprocess.run(["git", f"--git-dir={repo.path}", "branch", name, rev], check=True)
    old, new = tmp_path / "old.img", tmp_path / "new.img"
    make(str(repo.path), old, branch=["old-main", "feature"], history=True, quiet=True)
    make(str(repo.path), new, branch=["main", "feature", "old-main"], history=True, quiet=True, base=old)
    assert verify(str(new)).ok
    made = docteur.delta(old, new, tmp_path / "u")
    docteur.patch(old, tmp_path / "u", tmp_path / "out.img")
    assert (tmp_path / "out.img").read_bytes() == new.read_bytes()
    with ImageParts(old) as o, ImageParts(new) as n:
        added = sum(o.ordinal_of(n.oid(j)) < 0 for j in range(n.count))
    # What the new commit adds ships; of what OLD holds, git re-deltified a few whole entries at most.
    assert added <= made.shipped_entries <= added + 2
    with docteur.open(tmp_path / "out.img") as img:
        assert list(img.refs) == [
            "refs/heads/main",
            "refs/heads/feature",
            "refs/heads/old-main",
        ]
