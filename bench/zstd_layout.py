"""python -m bench.zstd_layout [--sweep NAME ...] [--corpus NAME ...]: how zstd images should cut their
frames (issue 11), measured.

For each corpus (the generated ones and ../shared/corpora), the files of its HEAD commit are written
through docteur.zstd.frames with one option changed at a time from the chosen defaults, and each variant is
reported with its FRAMES and dictionary sizes, the time the writer took, and the whole image it would make:
header and a PACK of the commit and trees (as `git pack-objects` packs them), its IDX, the section table,
the path index (built by docteur for these very locations) and the frames and dictionary, each at a
512-byte block boundary. Beside them: `mksquashfs -comp zstd` (defaults: size and time) and a solid
`tar | zstd -19` for reference. Sweeps:

- frame: the small-file frame size, with the time to read one small file from a cold frame;
- chunk: the large-file chunk size, with the time to read 4 KiB at a random offset of a large file;
- level: the zstd level; dict: no dictionary, the automatic choice, or a fixed size;
- order: the order files go into frames (the image's, by name, by extension, by similarity);
- chosen: the defaults on every corpus, with the goals of issue 11.
"""

from __future__ import annotations

import argparse
import heapq
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path

from bench import corpora
from bench.corpora import WORK, Corpus
from bench.measure import run
from docteur.blocksize import align
from docteur.bytesource.mapped import MappedFile
from docteur.sections import paths
from docteur.sections.table import table_length
from docteur.zstd import frames

BLOCK = 512
LARGE = 256 << 10  # the files the chunk sweep reads from
Blob = tuple[bytes, str, bytes]  # id, path, content
SWEEPS = ("frame", "chunk", "level", "dict", "order", "chosen")


class Tree:
    """The HEAD commit of a corpus's repository: its files in tree order, its commit and trees."""

    def __init__(self, repo: Path) -> None:
        self.repo = repo
        listing = self._git("ls-tree", "-r", "-z", "--full-tree", "HEAD").split(b"\0")
        entries = [line.split(b"\t", 1) for line in listing if line]
        blobs = [
            (meta.split()[2].decode(), path.decode("utf-8", "surrogateescape"))
            for meta, path in entries
            if meta.split()[1] == b"blob"
        ]
        contents = self._batch([oid for oid, _ in blobs])
        self.files: list[Blob] = [(bytes.fromhex(oid), path, contents[oid]) for oid, path in blobs]
        self.commit = bytes.fromhex(self._git("rev-parse", "HEAD").decode().strip())
        self.commit_data = self._batch([self.commit.hex()])[self.commit.hex()]
        trees = self._git("rev-list", "--objects", "--no-walk", "HEAD").decode().split()
        kinds = self._git(
            "cat-file", "--batch-check=%(objectname) %(objecttype)", stdin="\n".join(trees) + "\n"
        )
        self.tree_ids = [line.split()[0] for line in kinds.decode().splitlines() if line.endswith(" tree")]
        self.trees = {bytes.fromhex(k): v for k, v in self._batch(self.tree_ids).items()}

    def _git(self, *args: str, stdin: str | None = None) -> bytes:
        return subprocess.run(
            ["git", f"--git-dir={self.repo}", *args],
            input=None if stdin is None else stdin.encode(),
            capture_output=True,
            check=True,
        ).stdout

    def _batch(self, oids: list[str]) -> dict[str, bytes]:
        out = self._git("cat-file", "--batch", stdin="".join(f"{o}\n" for o in oids))
        found, at = {}, 0
        for oid in oids:
            end = out.index(b"\n", at)
            size = int(out[at:end].split()[2])
            found[oid] = out[end + 1 : end + 1 + size]
            at = end + 2 + size
        return found

    def trees_pack_size(self) -> int:
        """The commit and its trees as `git pack-objects` packs them (what a zstd image's PACK holds)."""
        ids = "\n".join([self.commit.hex(), *self.tree_ids]) + "\n"
        pack = self._git("pack-objects", "-q", "--window=10", "--depth=50", "--stdout", stdin=ids)
        return len(pack)

    def paths_size(self, written: frames.Written) -> int:
        """The path index docteur builds for these frames' locations."""

        def columns(oid: bytes) -> tuple[int, int, int]:
            frame, offset, size = written.locations[oid]
            return size, frame, offset  # a, b, c

        section = paths.encode(
            [(self.commit, self.commit_data)], self.trees.__getitem__, columns, paths.LOCATION_FRAMES
        )
        return len(section)


def idx_size(objects: int) -> int:
    return 8 + 1024 + objects * (20 + 4 + 4) + 40


def _cpu_of_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class Peers:
    def __init__(self, corpus: Corpus, runs: int) -> None:
        with tempfile.TemporaryDirectory() as scratch:
            squash = Path(scratch) / "disk.squashfs"
            cmd = ["mksquashfs", corpus.tree, squash, "-comp", "zstd", "-noappend", "-quiet", "-no-progress"]
            self.squash_time = self.squash_cpu = float("inf")
            for _ in range(runs):
                cpu, start = _cpu_of_children(), time.perf_counter()
                run(cmd)
                self.squash_time = min(self.squash_time, time.perf_counter() - start)
                self.squash_cpu = min(self.squash_cpu, _cpu_of_children() - cpu)
            self.squash_size = squash.stat().st_size
        tar = subprocess.run(
            ["tar", "-C", corpus.tree, "--sort=name", "-c", "."], capture_output=True, check=True
        )
        solid = subprocess.run(["zstd", "-19", "-q", "-c"], input=tar.stdout, capture_output=True, check=True)
        self.tar_zst = len(solid.stdout)


class Measured:
    """The writer on these files with these options: best wall and CPU time of `runs`, and sizes."""

    def __init__(self, tree: Tree, fixed: int, files: list[Blob], runs: int, **options: object) -> None:
        pairs = [(oid, content) for oid, _, content in files]
        self.seconds = self.cpu = float("inf")
        for _ in range(runs):
            cpu, start = time.process_time(), time.perf_counter()
            written = frames.write(pairs, **options)  # type: ignore[arg-type]
            self.seconds = min(self.seconds, time.perf_counter() - start)
            self.cpu = min(self.cpu, time.process_time() - cpu)
        self.written = written
        self.frames = len(written.section)
        self.dictionary = len(written.dictionary or b"")
        self.paths = tree.paths_size(written)
        parts = [fixed, self.paths, self.frames, *([self.dictionary] if self.dictionary else [])]
        self.image = sum(align(p, BLOCK) for p in parts)


def fixed_part(tree: Tree, sections: int) -> int:
    """Header + trees PACK, IDX and section table, each padded to a block."""
    objects = 1 + len(tree.tree_ids)
    return (
        align(28 + tree.trees_pack_size(), BLOCK)
        + align(idx_size(objects), BLOCK)
        + align(table_length(sections), BLOCK)
    )


class Opened:
    """A written section (and its dictionary) in a file, read through a memory mapping as an image is."""

    def __init__(self, written: frames.Written) -> None:
        self.written = written
        self._path = WORK / "zstd-layout.sections"
        self._path.write_bytes(written.section + (written.dictionary or b""))
        self.source = MappedFile(self._path)
        self.dictionary_at = (len(written.section), len(written.dictionary)) if written.dictionary else None

    def reader(self) -> frames.FramesReader:
        return frames.FramesReader(self.source, 0, len(self.written.section), dictionary=self.dictionary_at)

    def close(self) -> None:
        self.source.close()
        self._path.unlink()


def cold_read_us(measured: Measured, files: list[Blob], *, small: bool = True, samples: int = 300) -> float:
    """Median time to read one file (small ones) or 4 KiB at a random offset (large ones) from a frame
    not in the cache, through a memory-mapped image (the dictionary loaded already)."""
    rng = random.Random(1)
    chosen = [f for f in files if (0 < len(f[2]) <= frames.FRAME_BYTES if small else len(f[2]) > LARGE)]
    if not chosen:
        return float("nan")
    opened = Opened(measured.written)
    reader = opened.reader()
    reader.decompress(0)  # loads the dictionary
    times = []
    for _ in range(samples):
        oid, _, content = rng.choice(chosen)
        location = measured.written.locations[oid]
        reader.cache = frames.FrameCache(frames.DEFAULT_CACHE_BYTES)
        at = rng.randrange(len(content) - 4096) if not small else 0
        start = time.perf_counter()
        data = reader.read(*location) if small else reader.read_range(*location, at, 4096)
        times.append(time.perf_counter() - start)
        assert data == (content if small else content[at : at + 4096])
    opened.close()
    return statistics.median(times) * 1e6


def first_and_all(measured: Measured, files: list[Blob], runs: int) -> str:
    """Opening the section and reading one small file (which loads the dictionary), and reading every
    file with read_many, best of `runs`."""
    opened = Opened(measured.written)
    small = next((f for f in files if 0 < len(f[2]) <= frames.FRAME_BYTES), files[0])
    locations = [measured.written.locations[oid] for oid, _, _ in files]
    first = every = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        opened.reader().read(*measured.written.locations[small[0]])
        first = min(first, time.perf_counter() - start)
        reader = opened.reader()
        start = time.perf_counter()
        total = sum(len(data) for _, data in reader.read_many(locations))
        every = min(every, time.perf_counter() - start)
    opened.close()
    return f" {first * 1e3:.2f} ms | {every * 1e3:.0f} ms ({total / every / 1e6:.0f} MB/s) |"


def _extension(path: str) -> str:
    name = path.rsplit("/", 1)[-1]
    dot = name.rfind(".")
    return name[dot:] if dot > 0 else ""


def _sketch(content: bytes) -> list[int]:
    """The 8 smallest CRCs of the words of a file's first 8 KiB: files sharing most words share these."""
    return heapq.nsmallest(8, set(map(zlib.crc32, content[:8192].split())))


ORDERS: dict[str, Callable[[Blob], object]] = {
    "name": lambda f: (f[1].rsplit("/", 1)[-1], f[1]),
    "extension, name": lambda f: (_extension(f[1]), f[1].rsplit("/", 1)[-1], f[1]),
    "extension, size": lambda f: (_extension(f[1]), len(f[2]), f[1]),
    "similarity (8 smallest word CRCs)": lambda f: (_extension(f[1]), _sketch(f[2]), f[1]),
}


def _find_shared() -> None:
    """../shared/corpora seen from the main checkout or from a worktree under ../wt/."""
    here = Path(__file__).resolve().parent
    for parent in here.parents:
        if (parent / "shared" / "corpora").is_dir():
            corpora.SHARED = parent / "shared" / "corpora"
            return


def _row(corpus: str, variant: str, m: Measured, peers: Peers, extra: str = "") -> str:
    return (
        f"| {corpus} | {variant} | {m.frames / 1e6:.3f} | {m.dictionary / 1e6:.3f} | {m.paths / 1e6:.3f} | "
        f"{m.image / 1e6:.3f} | {m.image / peers.squash_size:.2f}x | {m.seconds:.2f} s / {m.cpu:.2f} s | "
        f"{m.seconds / peers.squash_time:.2f}x / {m.cpu / peers.squash_cpu:.2f}x |{extra}"
    )


HEADER = (
    "| corpus | variant | frames MB | dict MB | paths MB | image MB | vs squashfs | write: wall / CPU "
    "| vs mksquashfs: wall / CPU |{extra}\n|---|---|---|---|---|---|---|---|---|{sep}"
)
EXTRAS = {
    "frame": " cold read |",
    "chunk": " 4 KiB at an offset, cold |",
    "chosen": " cold small read | open + first read | read_many, every file |",
}


class Sweeper:
    """Every sweep asked for, on one corpus, each row added to its sweep's table."""

    def __init__(self, corpus: Corpus, tables: dict[str, list[str]], runs: int) -> None:
        assert corpus.repo is not None
        self.corpus, self.tables, self.runs = corpus, tables, runs
        self.tree = Tree(corpus.repo)
        self.files = self.tree.files
        self.peers = Peers(corpus, runs)
        self.fixed = fixed_part(self.tree, 3)
        size = sum(len(f[2]) for f in self.files)
        tables["peers"].append(
            f"| {corpus.name} | {len(self.files)} | {size / 1e6:.1f} | {self.peers.squash_size / 1e6:.3f} | "
            f"{self.peers.squash_time:.2f} s / {self.peers.squash_cpu:.2f} s | "
            f"{self.peers.tar_zst / 1e6:.3f} | {self.fixed / 1e6:.3f} |"
        )
        print(tables["peers"][-1], file=sys.stderr, flush=True)

    def measure(
        self,
        sweep: str,
        variant: str,
        extra: Callable[[Measured], str] | None = None,
        files: list[Blob] | None = None,
        **options: object,
    ) -> None:
        m = Measured(self.tree, self.fixed, self.files if files is None else files, self.runs, **options)
        self.tables[sweep].append(_row(self.corpus.name, variant, m, self.peers, extra(m) if extra else ""))
        print(self.tables[sweep][-1], file=sys.stderr, flush=True)

    def small_read(self, m: Measured) -> str:
        return f" {cold_read_us(m, self.files):.0f} µs |"

    def chosen_reads(self, m: Measured) -> str:
        return self.small_read(m) + first_and_all(m, self.files, max(3, self.runs))

    def large_read(self, m: Measured) -> str:
        return f" {cold_read_us(m, self.files, small=False):.0f} µs |"

    def run(self, sweeps: list[str]) -> None:
        if "frame" in sweeps and self.corpus.name != "large":
            for kib in (16, 32, 64, 128, 256):
                chunk = max(kib << 10, frames.CHUNK_BYTES)
                self.measure("frame", f"{kib} KiB", self.small_read, frame_bytes=kib << 10, chunk_bytes=chunk)
        if "chunk" in sweeps and any(len(f[2]) > LARGE for f in self.files):
            for kib in (256, 512, 1024, 2048, 4096):
                self.measure("chunk", f"{kib} KiB", self.large_read, chunk_bytes=kib << 10)
        if "level" in sweeps:
            for level in (3, 6, 9, 12, 15, 19):
                self.measure("level", f"level {level}", level=level)
        if "dict" in sweeps:
            self.measure("dict", "no dictionary", dictionary_bytes=0)
            self.measure("dict", "automatic")
            for kib in (256, 512, 1024, 2048, 4096):
                self.measure("dict", f"{kib} KiB", dictionary_bytes=kib << 10)
        if "order" in sweeps:
            self.measure("order", "the image's (tree order)")
            for name, key in ORDERS.items():
                start = time.perf_counter()
                ordered = sorted(self.files, key=key)
                cost = time.perf_counter() - start
                self.measure("order", f"{name} (+{cost:.2f} s to sort)", files=ordered)
        if "chosen" in sweeps:
            self.measure("chosen", "chosen defaults", self.chosen_reads)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.zstd_layout", description=__doc__.split("\n")[0])
    parser.add_argument("--sweep", action="append", choices=SWEEPS, help="only these sweeps (repeatable)")
    parser.add_argument("--corpus", action="append", help="only these corpora (repeatable)")
    parser.add_argument("--runs", type=int, default=2, help="timing runs, the best is kept (default 2)")
    args = parser.parse_args(argv)
    sweeps = args.sweep or list(SWEEPS)
    _find_shared()
    found = [corpora.generated(n) for n in ("pages", "book", "large", "wide")] + corpora.shared()
    tables: dict[str, list[str]] = {s: [] for s in ("peers", *sweeps)}
    for corpus in found:
        if not args.corpus or corpus.name in args.corpus:
            print(f"{corpus.name}...", file=sys.stderr, flush=True)
            Sweeper(corpus, tables, max(1, args.runs)).run(sweeps)
    print(
        "| corpus | files | MB | squashfs MB | mksquashfs: wall / CPU | tar \\| zstd -19 MB "
        "| PACK+IDX+table MB |"
    )
    print("|---|---|---|---|---|---|---|")
    print("\n".join(tables["peers"]))
    for sweep in sweeps:
        extra = EXTRAS.get(sweep, "")
        print(f"\n{sweep}:\n")
        print(HEADER.format(extra=extra, sep="---|" * extra.count("|")))
        print("\n".join(tables[sweep]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
