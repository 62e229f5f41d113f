"""Turn a Snapshot into the image's PACK and IDX.

`git pack-objects` is the delta engine when git is on PATH (OCaml docteur also runs git): it reuses the
deltas already in a repository's packs, finds new ones (window 10, depth 50) and writes the IDX. Without
git, dulwich copies the objects and reuses existing deltas but finds no new ones.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from docteur.bytesource.memory import InMemory
from docteur.errors import DocteurError
from docteur.idx.reader import PackIndex
from docteur.idx.writer import encode_index
from docteur.pack.reader import PACK_MAGIC


class Snapshot(Protocol):
    """What the engine packs (docteur.source.Snapshot is one): the pack layer knows no source."""

    repo_path: str  # a repository whose object store holds every object
    objects: list[tuple[bytes, bytes]]  # (hex id, path hint for delta search), unique, commit first
    recompress: bool  # the objects are staged uncompressed: recompress, never copy them


WINDOW, DEPTH = 10, 50
# Fixed, not the machine's CPU count: the same source must give the same image everywhere.
PARTS = 2
SPLIT_ABOVE = 10_000  # objects: a smaller tree packs fast enough in one process, and loses no delta


def _hint(path: bytes) -> bytes:
    # pack-objects reads "<id> <name>" lines: a name may not hold a newline.
    return path.replace(b"\n", b" ").replace(b"\r", b" ")


def _parts(objects: list[tuple[bytes, bytes]]) -> list[list[tuple[bytes, bytes]]]:
    """The listing cut into PARTS groups along git's delta-search order, each group in listing order.

    git pairs an object with its neighbours in an order driven by the end of their paths (its name hash
    weighs the last characters most): sorting by the reversed last 16 bytes keeps those neighbours in
    one group, so only the cuts lose delta candidates.
    """
    order = sorted(range(len(objects)), key=lambda i: (objects[i][1][-16:][::-1], i))
    size = -(-len(order) // PARTS)
    return [[objects[i] for i in sorted(order[k : k + size])] for k in range(0, len(order), size)]


def _pack_objects(
    snapshot: Snapshot, objects: list[tuple[bytes, bytes]], prefix: Path, show_progress: bool
) -> subprocess.Popen[bytes]:
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
    cmd.append(str(prefix))
    listing = prefix.with_suffix(".list")
    listing.write_bytes(b"".join(oid + b" " + _hint(path) + b"\n" for oid, path in objects))
    with listing.open("rb") as stdin:
        return subprocess.Popen(
            cmd,
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=None if show_progress else subprocess.PIPE,
            env=env,
        )


def _finish(proc: subprocess.Popen[bytes], prefix: Path) -> tuple[Path, bytes]:
    out, err = proc.communicate()
    if proc.returncode != 0:
        reason = (err or b"").decode(errors="replace").strip().splitlines()
        raise DocteurError(f"git pack-objects failed: {reason[-1] if reason else proc.returncode}")
    name = prefix.parent / f"{prefix.name}-{out.decode().strip()}"
    return name.with_suffix(".pack"), name.with_suffix(".idx").read_bytes()


def _concatenate(packs: list[tuple[Path, bytes]], out: Path) -> tuple[Path, bytes]:
    """One PACK holding the entries of `packs` end to end, and its IDX.

    Entries are copied unchanged: an OFS_DELTA names its base by a distance back from itself, which
    holds since each pack's entries stay together, and an entry's CRC32 covers only its own bytes.
    """
    indexes = [PackIndex(InMemory(idx)) for _, idx in packs]
    header = PACK_MAGIC + struct.pack(">II", 2, sum(index.count for index in indexes))
    sha = hashlib.sha1(header)
    rows: list[tuple[bytes, int, int]] = []
    at = len(header)
    with out.open("wb") as dst:
        dst.write(header)
        for (pack, _), index in zip(packs, indexes, strict=True):
            entries = pack.stat().st_size - len(header) - 20  # without its header and checksum
            rows += [(oid, offset - len(header) + at, crc) for oid, offset, crc in index.entries()]
            with pack.open("rb") as src:
                src.seek(len(header))
                left = entries
                while left:
                    chunk = src.read(min(left, 1 << 20))
                    if not chunk:
                        raise DocteurError(f"{pack} is shorter than git said")
                    sha.update(chunk)
                    dst.write(chunk)
                    left -= len(chunk)
            at += entries
        checksum = sha.digest()
        dst.write(checksum)
    return out, encode_index(rows, checksum)


def pack_with_git(snapshot: Snapshot, workdir: Path, show_progress: bool) -> tuple[Path, bytes]:
    # A directory's objects all go through the delta search, the slow part: on a large tree it runs as
    # PARTS single-threaded processes side by side, whose packs are then put end to end.
    split = snapshot.recompress and len(snapshot.objects) > SPLIT_ABOVE
    groups = _parts(snapshot.objects) if split else [snapshot.objects]
    prefixes = [workdir / f"part{n}" for n in range(len(groups))]
    procs = [
        _pack_objects(snapshot, group, prefix, show_progress and n == 0)
        for n, (group, prefix) in enumerate(zip(groups, prefixes, strict=True))
    ]
    try:
        packs = [_finish(proc, prefix) for proc, prefix in zip(procs, prefixes, strict=True)]
    finally:
        # On an error or an interrupt, no git may go on writing into the scratch directory being removed.
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
    return packs[0] if len(packs) == 1 else _concatenate(packs, workdir / "image.pack")


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
