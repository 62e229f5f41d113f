"""Reading: a full read, open-to-first-byte (in a process and in a fresh one), a repeated read, the peak
RSS of a full walk; the path-index goals (issue 10) beside the first figures (issue 3)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

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
            limit=0.6,
        ),
        Row(
            f"full read, walk() + stat() + read() ({label})",
            best["walk"],
            best["git"],
            peer_name="git --batch",
            limit=1.0,
        ),
    ]


def _first_byte(image: Path, path: str) -> None:
    with docteur.open(image) as img:
        img.read(path)[:1]


def open_to_first_byte(wide: Made, small: Made, runs: int) -> list[Row]:
    """Open an image and read one file of its largest folder, in this process, against the same in an
    image of 40 files."""
    best = interleaved(
        {
            "wide": lambda: _first_byte(wide.image, wide.in_largest),
            "small": lambda: _first_byte(small.image, small.first),
        },
        runs * 10,
    )
    label = f"{wide.largest}-entry folder of {wide.corpus.name}"
    return [
        Row(f"open + read one file of a {label}", best["wide"] * 1e6, unit="µs", limit=1000, relative=False),
        Row(
            f"open + read one file of a {label}, vs {small.files}-file image",
            best["wide"] * 1e6,
            best["small"] * 1e6,
            unit="µs",
            peer_name=f"{small.files}-file image",
            limit=1.2,
        ),
    ]


def fresh_process(made: Made, runs: int) -> Row:
    """A new interpreter: import docteur, open the image, read one file (what a script pays)."""
    code = f"import docteur; docteur.open({str(made.image)!r}).read({made.in_largest!r})"
    best = interleaved(
        {
            "ours": lambda: run([sys.executable, "-c", code]),
            "python": lambda: run([sys.executable, "-c", "0"]),
        },
        runs * 4,
    )
    return Row(
        f"fresh process: import docteur + open + first byte ({made.corpus.name})",
        best["ours"] * 1000,
        best["python"] * 1000,
        unit="ms",
        peer_name="python -c 0",
        limit=30,
        relative=False,
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
        limit=1.5,
    )
