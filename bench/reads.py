"""Goals 1-4 of issue 3: full read, open-to-first-byte, repeated read, peak RSS of a full walk."""

from __future__ import annotations

import sys
import time

import docteur
from bench.images import Made
from bench.measure import interleaved, peak_rss_mb, run
from bench.table import Row
from bench.walker import read_everything

REPEATS = 20_000


def _git_batch(made: Made) -> list[str]:
    return ["git", f"--git-dir={made.peer_repo}", "cat-file", "--batch"]


def _read_all(made: Made) -> int:
    with docteur.open(made.image) as img:
        return sum(len(data) for _, data in img.read_all())


def _walk_read(made: Made) -> int:
    with docteur.open(made.image) as img:
        return read_everything(img)


def full_read(made: Made, runs: int) -> list[Row]:
    """Every file through the Python API vs git cat-file --batch on the same blobs of the same PACK."""
    best = interleaved(
        {
            "read_all": lambda: _read_all(made),
            "walk": lambda: _walk_read(made),
            "git": lambda: run(_git_batch(made), stdin=made.blobs),
        },
        runs,
    )
    label = f"{made.corpus.name}, {made.files} files"
    return [
        Row(
            f"full read, read_all() ({label})",
            best["read_all"],
            best["git"],
            peer_name="git --batch",
            limit=1.0,
        ),
        Row(f"full read, walk() + read() ({label})", best["walk"], best["git"], peer_name="git --batch"),
    ]


def _first_byte(made: Made) -> None:
    with docteur.open(made.image) as img:
        img.read(made.first)[:1]


def open_to_first_byte(big: Made, small: Made, runs: int) -> Row:
    best = interleaved({"big": lambda: _first_byte(big), "small": lambda: _first_byte(small)}, runs * 10)
    return Row(
        f"open + read one file ({big.files} files vs {small.files})",
        best["big"] * 1e6,
        best["small"] * 1e6,
        unit="µs",
        peer_name=f"{small.files}-file image",
        limit=2.0,
    )


def repeated_read(made: Made, runs: int) -> Row:
    """One small file read again and again through Image.read(), vs git --batch asked for it as often."""
    with docteur.open(made.image) as img:
        img.read(made.first)
        ours = float("inf")
        for _ in range(runs):
            start = time.perf_counter()
            for _ in range(REPEATS):
                img.read(made.first)
            ours = min(ours, (time.perf_counter() - start) / REPEATS)
        oid = img.stat(made.first).oid
    requests = made.image.parent / "repeated.txt"
    requests.write_text(f"{oid}\n" * REPEATS)
    best = interleaved({"git": lambda: run(_git_batch(made), stdin=requests)}, runs)
    return Row(
        f"read() of one small file, repeated ({made.corpus.name})",
        ours * 1e6,
        best["git"] / REPEATS * 1e6,
        unit="µs",
        peer_name="git --batch",
        limit=10.0,
        relative=False,
    )


def peak_rss(made: Made, runs: int) -> Row:
    ours = peak_rss_mb([sys.executable, "-m", "bench.walker", made.image], runs=runs)
    peer = peak_rss_mb(_git_batch(made), stdin=made.blobs, runs=runs)
    return Row(
        f"peak RSS, walk + read every file ({made.corpus.name}, {made.files} files)",
        ours,
        peer,
        unit="MB",
        peer_name="git --batch",
        limit=2.0,
    )
