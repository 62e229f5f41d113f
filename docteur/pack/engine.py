"""Turn a Snapshot into the image's PACK and IDX.

`git pack-objects` is the delta engine when git is on PATH (OCaml docteur also runs git): it reuses the
deltas already in a repository's packs, finds new ones (window 10, depth 50) and writes the IDX. Without
git, dulwich copies the objects and reuses existing deltas but finds no new ones.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from docteur.errors import DocteurError
from docteur.idx.writer import encode_index
from docteur.source import Snapshot

WINDOW, DEPTH = 10, 50


def _hint(path: bytes) -> bytes:
    # pack-objects reads "<id> <name>" lines: a name may not hold a newline.
    return path.replace(b"\n", b" ").replace(b"\r", b" ")


def pack_with_git(snapshot: Snapshot, workdir: Path, show_progress: bool) -> tuple[Path, bytes]:
    env = {
        **os.environ,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "LC_ALL": "C",
    }
    env.pop("GIT_DIR", None)
    cmd = [
        "git",
        f"--git-dir={snapshot.repo_path}",
        "-c",
        "pack.indexVersion=2",
        "-c",
        "pack.writeReverseIndex=false",
        "pack-objects",
        f"--window={WINDOW}",
        f"--depth={DEPTH}",
        # One thread: the delta search is then deterministic, so the same source gives the same image.
        "--threads=1",
        "--delta-base-offset",
        "--progress" if show_progress else "-q",
    ]
    if snapshot.recompress:
        cmd.append("--no-reuse-object")
    cmd.append(str(workdir / "pack"))
    listing = b"".join(oid + b" " + _hint(path) + b"\n" for oid, path in snapshot.objects)
    done = subprocess.run(
        cmd,
        input=listing,
        stdout=subprocess.PIPE,
        stderr=None if show_progress else subprocess.PIPE,
        env=env,
        check=False,
    )
    if done.returncode != 0:
        reason = (done.stderr or b"").decode(errors="replace").strip().splitlines()
        raise DocteurError(f"git pack-objects failed: {reason[-1] if reason else done.returncode}")
    name = workdir / f"pack-{done.stdout.decode().strip()}"
    return name.with_suffix(".pack"), name.with_suffix(".idx").read_bytes()


def pack_with_dulwich(snapshot: Snapshot, workdir: Path) -> tuple[Path, bytes]:
    from dulwich.object_format import SHA1
    from dulwich.pack import write_pack_from_container
    from dulwich.repo import Repo

    repo = Repo(snapshot.repo_path)
    pack = workdir / "dulwich.pack"
    with pack.open("wb") as out:
        entries, checksum = write_pack_from_container(
            out.write,
            repo.object_store,
            [(oid, None) for oid, _ in snapshot.objects],
            SHA1,
            deltify=False,
            reuse_deltas=not snapshot.recompress,
        )
    rows = [
        (bytes.fromhex(oid.decode()) if len(oid) == 40 else oid, off, crc)
        for oid, (off, crc) in entries.items()
    ]
    return pack, encode_index(rows, checksum)


def build_pack(
    snapshot: Snapshot, workdir: Path, show_progress: bool, warn: Callable[[str], None]
) -> tuple[Path, bytes]:
    if shutil.which("git"):
        return pack_with_git(snapshot, workdir, show_progress)
    warn("git is not on PATH: packing without a delta search (the image may be larger)")
    return pack_with_dulwich(snapshot, workdir)
