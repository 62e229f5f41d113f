"""Every tool with an image on a web server: docteur.open(URL), the CLI, fsspec, docteur-serve and FUSE,
against nginx on 127.0.0.1."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import fsspec
from conftest import BIN, run_cli
from trees import image_tree, read_fs_tree, read_image_tree

import docteur
from docteur.bytesource.http import HttpSource
from remote.loopback import Nginx


def test_docteur_open_takes_a_url(nginx: Nginx, image: Path, cache_dir: Path) -> None:
    with docteur.open(nginx.url("disk.img"), cache_dir=cache_dir) as img:
        assert isinstance(img.source, HttpSource) and img.indexed
        assert read_image_tree(img) == image_tree(image)
        assert dict(img.read_all()) == dict(docteur.open(image).read_all())
    assert any(cache_dir.rglob("*"))  # blocks kept on disk


def test_the_cli_reads_a_url(nginx: Nginx, image: Path, tmp_path: Path) -> None:
    url = nginx.url("disk.img")
    env = {"XDG_CACHE_HOME": str(tmp_path / "xdg")}
    assert run_cli("docteur-cat", url, "small.txt", env=env).stdout == b"a small file\n"
    listed = run_cli("docteur-ls", "-l", url, "d0", env=env)
    assert listed.returncode == 0 and listed.stdout.count(b"\n") == len(docteur.open(image).listdir("d0"))
    verified = run_cli("docteur-verify", url, env=env)
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.startswith(f"commit\t: {docteur.open(image).commit}".encode())
    info = json.loads(run_cli("docteur", "info", "--json", url, env=env).stdout)
    assert info["image"] == url and info["image_bytes"] == image.stat().st_size and info["indexed"]
    out = tmp_path / "out"
    assert run_cli("docteur", "extract", url, out, env=env).returncode == 0
    assert read_fs_tree(out) == image_tree(image)
    assert any((tmp_path / "xdg" / "docteur").rglob("*"))  # the default cache


def test_cache_options_of_the_tools(nginx: Nginx, tmp_path: Path) -> None:
    url = nginx.url("disk.img")
    env = {"XDG_CACHE_HOME": str(tmp_path / "xdg")}
    done = run_cli("docteur", "cat", "--no-cache", url, "small.txt", env=env)
    assert done.stdout == b"a small file\n" and not (tmp_path / "xdg").exists()
    mark = nginx.mark()
    run_cli("docteur", "cat", "--cache-dir", tmp_path / "mine", url, "small.txt", env=env)
    first = len(nginx.since(mark))
    mark = nginx.mark()
    again = run_cli("docteur", "cat", "--cache-dir", tmp_path / "mine", url, "small.txt", env=env)
    assert again.stdout == b"a small file\n" and any((tmp_path / "mine").rglob("*"))
    assert len(nginx.since(mark)) == 1 < first  # only the freshness check


def test_a_missing_url_is_one_line(nginx: Nginx) -> None:
    done = run_cli("docteur-cat", nginx.url("nowhere.img"), "small.txt")
    assert done.returncode == 1 and done.stderr.count(b"\n") == 1 and b"Traceback" not in done.stderr
    assert b"404" in done.stderr or b"not found" in done.stderr.lower()


def test_fsspec_reads_a_url(nginx: Nginx, image: Path) -> None:
    fs = fsspec.filesystem("docteur", fo=nginx.url("disk.img"))  # read by docteur's HTTP source
    assert fs.cat("small.txt") == b"a small file\n"
    assert fs.ls("d0", detail=False) == [f"d0/{n}" for n in docteur.open(image).listdir("d0")]


def test_docteur_serve_serves_a_url(nginx: Nginx, image: Path, tmp_path: Path) -> None:
    from ninep.client import Client

    sock = tmp_path / "9p.sock"
    serve = subprocess.Popen(
        [BIN / "docteur-serve", nginx.url("disk.img"), "--listen", f"unix:{sock}"],
        stderr=subprocess.PIPE,
        env={**os.environ, "XDG_CACHE_HOME": str(tmp_path / "xdg")},
    )
    try:
        deadline = time.monotonic() + 30
        while not sock.exists() and time.monotonic() < deadline and serve.poll() is None:
            time.sleep(0.05)
        with Client.session(str(sock)) as client:
            assert client.read("small.txt") == b"a small file\n"
    finally:
        serve.terminate()
        serve.wait(10)


def test_fuse_mounts_a_url(nginx: Nginx, image: Path, tmp_path: Path) -> None:
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    env = {"XDG_CACHE_HOME": str(tmp_path / "xdg")}
    done = run_cli("docteur-mount", nginx.url("disk.img"), mountpoint, env=env)
    assert done.returncode == 0, done.stderr
    try:
        assert (mountpoint / "small.txt").read_bytes() == b"a small file\n"
        assert read_fs_tree(mountpoint) == image_tree(image)
    finally:
        subprocess.run(["fusermount3", "-u", str(mountpoint)], check=True)
