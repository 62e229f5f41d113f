"""Delta updates (issue 12): update sizes against git's thin packs and the byte-level tools (zstd
--patch-from, bsdiff, xdelta3) on the shared repositories at HEAD~1, HEAD~10, HEAD~100 and the
benchmark's own repository; patch time against docteur-make of the same image from its source; peak
RSS of delta and patch; and the update between two --base makes of a directory with one file changed.

python -m bench.bench_update runs it alone; `make bench` runs it with the others (bench/peers.py).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zlib
from pathlib import Path

from bench import corpora
from bench.corpora import WORK, Corpus
from bench.images import DATE
from bench.measure import interleaved, peak_rss_mb, run
from bench.table import Row, render
from docteur.make import make, parse_date

BIN = Path(sys.executable).parent
DOCTEUR, MAKE = BIN / "docteur", BIN / "docteur-make"
BACK = (1, 10, 100)
RUNS = 3
RSS_GOAL = 64  # MiB


def _git(repo: Path, *args: str, stdin: bytes | None = None) -> bytes:
    return subprocess.run(
        ["git", f"--git-dir={repo}", *args], input=stdin, capture_output=True, check=True
    ).stdout


def _commit(repo: Path, k: int) -> str | None:
    done = subprocess.run(
        ["git", f"--git-dir={repo}", "rev-parse", "-q", "--verify", f"HEAD~{k}^{{commit}}"],
        capture_output=True,
        text=True,
    )
    return done.stdout.strip() or None


def _size_of(cmd: list[str | Path], out: Path) -> int:
    run(cmd)
    return out.stat().st_size


def _peers(old: Path, new: Path, where: Path) -> dict[str, tuple[int, str]]:
    """Byte-level deltas of the two image files: size and what made them."""
    found: dict[str, tuple[int, str]] = {}
    if shutil.which("zstd"):
        out = where / "zstd.patch"
        cmd = ["zstd", "-q", "-f", "-19", "--long=27", f"--patch-from={old}", new, "-o", out]
        found["zstd"] = (_size_of(cmd, out), "zstd -19 --long --patch-from")
    if shutil.which("bsdiff"):
        out = where / "bsdiff.patch"
        found["bsdiff"] = (_size_of(["bsdiff", old, new, out], out), "bsdiff")
    if shutil.which("xdelta3"):
        out = where / "xdelta3.patch"
        found["xdelta3"] = (_size_of(["xdelta3", "-e", "-9", "-f", "-s", old, new, out], out), "xdelta3 -9")
    return found


def _thin_pack(repo: Path, old: str, new: str) -> int:
    revs = f"{new}\n^{old}\n".encode()
    return len(
        _git(repo, "pack-objects", "--thin", "--revs", "--stdout", "-q", "--delta-base-offset", stdin=revs)
    )


def _kb(n: int) -> float:
    return n / 1000


def _repository_rows(name: str, repo: Path) -> list[Row]:
    where = WORK / "update" / name
    shutil.rmtree(where, ignore_errors=True)
    where.mkdir(parents=True)
    head = _commit(repo, 0)
    assert head is not None
    new = where / "new.img"
    make(str(repo), new, branch=head, quiet=True)
    rows: list[Row] = []
    largest: tuple[Path, Path] | None = None
    for k in BACK:
        commit = _commit(repo, k)
        if commit is None:
            continue
        old, update = where / f"old-{k}.img", where / f"{k}.update"
        make(str(repo), old, branch=commit, quiet=True)
        run([DOCTEUR, "delta", "-q", old, new, "-o", update])
        ours = update.stat().st_size
        label = f"{name}, HEAD~{k}"
        thin = _thin_pack(repo, commit, head)
        rows.append(
            Row(
                f"update size vs git thin pack ({label})",
                _kb(ours),
                _kb(thin),
                unit="KB",
                peer_name="git pack-objects --thin --revs",
                limit=1.1,
            )
        )
        for peer, (size, how) in _peers(old, new, where).items():
            rows.append(
                Row(
                    f"update size vs {peer} of the images ({label})",
                    _kb(ours),
                    _kb(size),
                    unit="KB",
                    peer_name=how,
                    limit=0.3,
                )
            )
        rows.append(
            _patch_vs_make(label, old, update, [MAKE, "-q", repo, where / "made.img", "-b", head], where)
        )
        largest = (old, update)
    if largest is not None:
        rows += _rss(name, largest[0], new, largest[1], where)
    return rows


def _patch_vs_make(label: str, old: Path, update: Path, make_cmd: list[str | Path], where: Path) -> Row:
    best = interleaved(
        {
            "patch": lambda: run([DOCTEUR, "patch", old, update, "-o", where / "patched.img"]),
            "make": lambda: run(make_cmd),
        },
        RUNS,
    )
    return Row(
        f"docteur patch time vs docteur-make of NEW ({label})",
        best["patch"],
        best["make"],
        peer_name="docteur-make from its source",
        limit=0.5,
    )


def _rss(label: str, old: Path, new: Path, update: Path, where: Path) -> list[Row]:
    scratch = where / "rss.update"
    delta = peak_rss_mb([DOCTEUR, "delta", "-q", old, new, "-o", scratch])
    patch = peak_rss_mb([DOCTEUR, "patch", old, update, "-o", where / "rss.img"])
    size = f"{new.stat().st_size / 1e6:.1f} MB image"
    return [
        Row(
            f"peak RSS of docteur delta ({label}, {size})", delta, unit="MiB", limit=RSS_GOAL, relative=False
        ),
        Row(
            f"peak RSS of docteur patch ({label}, {size})", patch, unit="MiB", limit=RSS_GOAL, relative=False
        ),
    ]


def _one_file_changed(corpus: Corpus) -> list[Row]:
    """Two --base makes of a directory, one file edited between them."""
    where = WORK / "update" / f"{corpus.name}-dir"
    shutil.rmtree(where, ignore_errors=True)
    tree = where / "tree"
    shutil.copytree(corpus.tree, tree, symlinks=True, ignore=shutil.ignore_patterns(".git"))
    when = parse_date(DATE)
    old, new, update = where / "old.img", where / "new.img", where / "one.update"
    make(str(tree), old, date=when, quiet=True)
    files = sorted(p for p in tree.rglob("*") if p.is_file() and not p.is_symlink())
    changed = files[len(files) // 2]
    data = changed.read_bytes()
    middle = len(data) // 2
    changed.write_bytes(data[:middle] + b"\nA line added between two makes.\n" + data[middle:])
    based: list[str | Path] = [MAKE, "-q", tree, new, "-d", DATE, "--base", old]
    plain: list[str | Path] = [MAKE, "-q", tree, where / "plain.img", "-d", DATE]
    run(based)
    run([DOCTEUR, "delta", "-q", old, new, "-o", update])
    bound = 2 * len(zlib.compress(changed.read_bytes())) + 4096
    label = f"{corpus.name} directory, {corpus.files} files"
    makes = interleaved({"based": lambda: run(based), "plain": lambda: run(plain)}, RUNS)
    rows = [
        Row(
            f"update between --base makes, one file changed ({label})",
            _kb(update.stat().st_size),
            _kb(bound),
            unit="KB",
            peer_name="2x the file deflated + 4 KiB",
            limit=1.0,
        ),
        _patch_vs_make(label, old, update, plain, where),
        Row(
            f"docteur-make --base time vs without ({label})",
            makes["based"],
            makes["plain"],
            peer_name="docteur-make without --base",
        ),
    ]
    return rows + _rss(f"{corpus.name} directory", old, new, update, where)


def rows(tree: Path, source: Path | None = None, name: str = "") -> list[Row]:
    found: list[Row] = []
    for corpus in corpora.shared():
        assert corpus.repo is not None
        print(f"bench_update: {corpus.name}...", file=sys.stderr)
        found += _repository_rows(corpus.name, corpus.repo)
    if source is not None:
        found += _repository_rows(name or tree.name, source)  # the synthetic corpus, its few revisions
    for corpus in (corpora.generated("book"), corpora.generated("pages")):
        print(f"bench_update: {corpus.name} directory...", file=sys.stderr)
        found += _one_file_changed(corpus)
    return found


if __name__ == "__main__":
    book = corpora.generated("book")
    print(render(rows(book.tree, book.repo, book.name)))
