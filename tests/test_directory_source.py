"""Directories as sources: OCaml-compatible commits, modes, links, skipped kinds, errors, atomic output."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from trees import DIR, EXEC, FILE, LINK, image_tree, read_fs_tree, write_tree

import docteur
from docteur.errors import SourceError
from docteur.make import make, parse_date
from docteur.source.directory import encode_commit


def test_commit_is_the_one_ocaml_docteur_makes() -> None:
    # OCaml docteur's own test: a directory whose tree is 7d8a9e38..., made at this date, has this commit.
    body = encode_commit(
        bytes.fromhex("7d8a9e386b602e1bd8cd8f226a461a87ccf372e3"), parse_date("2020-10-10T08:00:00+00:00")
    )
    oid = hashlib.sha1(b"commit %d\0" % len(body) + body).hexdigest()
    assert oid == "ca71a852f6c2d16bf04691f13b8a7edeadb15b80"


def test_time_zone_of_the_date_is_kept() -> None:
    body = encode_commit(bytes(20), parse_date("2020-10-10T10:30:00+02:30"))
    assert b"author Dr. Greenthumb <noreply@cypress.hill> 1602316800 +0230\n" in body
    body = encode_commit(bytes(20), parse_date("2020-10-10T03:00:00-05:00"))
    assert b" 1602316800 -0500\n" in body


def test_tree_id_matches_git_for_the_same_files(make_image, tmp_path: Path) -> None:
    spec = {b"a": (FILE, b"1"), b"x/y/z": (EXEC, b"#!"), b"x/l": (LINK, b"../a"), b".dot": (FILE, b"")}
    write_tree(tmp_path / "d", spec)
    with docteur.open(make_image(tmp_path / "d")) as img:
        tree = img.tree
    env = {**os.environ, "GIT_DIR": str(tmp_path / "g.git"), "GIT_WORK_TREE": str(tmp_path / "d")}
    subprocess.run(["git", "init", "-q", "--bare", str(tmp_path / "g.git")], check=True)
    subprocess.run(["git", "add", "-A"], env=env, check=True)
    assert (
        subprocess.run(["git", "write-tree"], env=env, capture_output=True, check=True)
        .stdout.decode()
        .strip()
        == tree
    )


def test_modes_links_dotfiles_and_empty_dirs(make_image, tmp_path: Path) -> None:
    spec = {
        b".env": (FILE, b"dot=1"),
        b"run": (EXEC, b"#!/bin/sh\n"),
        b"plain": (FILE, b"text"),
        b"abs": (LINK, b"/etc/passwd"),
        b"up": (LINK, b"../../outside"),
        b"dangling": (LINK, b"nowhere"),
        b"empty/": (DIR, b""),
        b"a/b/c/d.txt": (FILE, b"deep"),
    }
    write_tree(tmp_path / "d", spec)
    assert image_tree(make_image(tmp_path / "d")) == read_fs_tree(tmp_path / "d")


def test_symlink_to_a_directory_outside_is_stored_not_followed(make_image, tmp_path: Path) -> None:
    (tmp_path / "secret").mkdir()
    (tmp_path / "secret" / "key").write_text("do not embed")
    (tmp_path / "d").mkdir()
    os.symlink(tmp_path / "secret", tmp_path / "d" / "escape")
    with docteur.open(make_image(tmp_path / "d")) as img:
        assert img.listdir() == ["escape"]
        assert img.stat("escape").mode == LINK
        assert img.readlink("escape") == str(tmp_path / "secret")
        assert all(img.objects.get(o)[1] != b"do not embed" for o in img.objects)


def test_fifos_and_sockets_are_skipped_with_a_warning(tmp_path: Path, date) -> None:
    import socket

    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "kept").write_text("kept")
    os.mkfifo(tmp_path / "d" / "pipe")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "d" / "sock"))
    warnings: list[str] = []
    try:
        make(str(tmp_path / "d"), tmp_path / "o.img", date=date, quiet=True, warn=warnings.append)
    finally:
        sock.close()
    assert image_tree(tmp_path / "o.img") == {b"kept": (FILE, b"kept")}
    assert len(warnings) == 2 and all("skipping" in w for w in warnings)


def test_empty_directory_source(make_image, tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    with docteur.open(make_image(tmp_path / "d")) as img:
        assert img.tree == "4b825dc642cb6eb9a060e54bf8d69288fbee4904"  # git's empty tree
        assert img.listdir() == []


def test_duplicate_contents_are_stored_once(make_image, tmp_path: Path) -> None:
    spec = {
        b"one/a": (FILE, b"same"),
        b"two/a": (FILE, b"same"),
        b"one/b": (FILE, b"x"),
        b"two/b": (FILE, b"x"),
    }
    write_tree(tmp_path / "d", spec)
    with docteur.open(make_image(tmp_path / "d")) as img:
        assert len(img.objects) == 5  # the commit, the root, one subtree for both, two blobs
        assert img.stat("one").oid == img.stat("two").oid


def test_unreadable_file_is_a_one_line_error() -> None:
    # root reads everything: run the maker as nobody, on a tree where nobody can read one file.
    tmp_path = Path(tempfile.mkdtemp(prefix="docteur-unreadable-"))
    os.chmod(tmp_path, 0o777)
    src = tmp_path / "d"
    write_tree(src, {b"ok": (FILE, b"ok"), b"secret": (FILE, b"no")})
    os.chmod(src / "secret", 0)
    out = subprocess.run(
        [
            "setpriv",
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            "--",
            str(Path(os.sys.executable).parent / "docteur-make"),
            "-q",
            str(src),
            str(tmp_path / "o.img"),
        ],
        capture_output=True,
        env={**os.environ, "HOME": str(tmp_path)},
    )
    assert out.returncode == 1
    assert (
        out.stderr.decode().strip() == f"docteur-make: error: cannot read {src / 'secret'}: Permission denied"
    )
    assert not (tmp_path / "o.img").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["d"]  # no temporary file left
    shutil.rmtree(tmp_path)


@pytest.fixture
def tiny_fs(tmp_path: Path):
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def test_disk_full_leaves_nothing_behind(tiny_fs: Path, tmp_path: Path, date) -> None:
    write_tree(tmp_path / "d", {b"big": (FILE, os.urandom(1 << 20))})
    with pytest.raises(OSError) as e:
        make(str(tmp_path / "d"), tiny_fs / "o.img", date=date, quiet=True)
    assert e.value.errno == 28
    assert list(tiny_fs.iterdir()) == []


def test_failed_make_keeps_the_old_image(tmp_path: Path, date) -> None:
    write_tree(tmp_path / "d", {b"f": (FILE, b"v1")})
    target = tmp_path / "o.img"
    make(str(tmp_path / "d"), target, date=date, quiet=True)
    before = target.read_bytes()
    with pytest.raises(SourceError):
        make(str(tmp_path / "missing"), target, date=date, quiet=True)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "o.img"]


def test_bad_block_size_is_refused(tmp_path: Path, date) -> None:
    (tmp_path / "d").mkdir()
    for bad in (0, 100, 513, 1 << 30):
        with pytest.raises(ValueError, match="block size"):
            make(str(tmp_path / "d"), tmp_path / "o.img", block_size=bad, date=date, quiet=True)


@pytest.mark.parametrize("text", ["yesterday", "2020-10-10", "2020-10-10T08:00:00"])
def test_bad_dates_are_refused(text: str) -> None:
    with pytest.raises(docteur.DocteurError, match="RFC 3339"):
        parse_date(text)


@pytest.mark.parametrize("case", ["missing-dir", "is-a-dir", "not-permitted"])
def test_unwritable_output_is_a_one_line_error(case: str) -> None:
    root = Path(tempfile.mkdtemp(prefix="docteur-unwritable-"))
    os.chmod(root, 0o755)  # others may enter, not write: `nobody` cannot create files here
    write_tree(root / "src", {b"f": (FILE, b"x")})
    target = {
        "missing-dir": root / "no" / "o.img",
        "is-a-dir": root / "src",
        "not-permitted": root / "o.img",
    }[case]
    user = (
        ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"]
        if case == "not-permitted"
        else []
    )
    make = str(Path(os.sys.executable).parent / "docteur-make")
    out = subprocess.run(
        [*user, make, "-q", str(root / "src"), str(target)],
        capture_output=True,
        env={**os.environ, "HOME": str(root)},
    )
    reason = {
        "missing-dir": "No such file or directory",
        "is-a-dir": "Is a directory",
        "not-permitted": "Permission denied",
    }[case]
    assert out.returncode == 1
    assert out.stderr.decode() == f"docteur-make: error: {target}: {reason}\n"
    assert sorted(p.name for p in root.iterdir()) == ["src"]
    shutil.rmtree(root)


def test_scratch_of_a_killed_make_is_removed_by_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    monkeypatch.setattr(tempfile, "tempdir", None)  # tempfile caches TMPDIR: read it again
    dead = subprocess.Popen(["true"])
    dead.wait()
    abandoned = scratch / f"docteur-make-{dead.pid}-abcd1234"
    (abandoned / "staging.git").mkdir(parents=True)
    living = scratch / f"docteur-make-{os.getpid()}-efgh5678"  # this process: alive, kept
    living.mkdir()
    write_tree(tmp_path / "d", {b"f": (FILE, b"x")})
    make(str(tmp_path / "d"), tmp_path / "o.img", date=parse_date("2020-10-10T08:00:00Z"), quiet=True)
    assert sorted(p.name for p in scratch.iterdir()) == [living.name]
