"""The benchmark corpora, generated deterministically under bench/work/ (git-ignored), once.

- book: ~2,500 prose files (~10 MB), chapters rewritten from shared passages with small edits, committed
  in a repository with a few edited revisions so that its packs hold deltas;
- pages: ~40,000 small pages (~20 MB) in 400 folders, sharing a template;
- large: a few large files (compressible text, an edited copy of it, random bytes);
- tiny: ~40 files, the small side of the open-to-first-byte comparison;
- wide: 4,000 small files in one folder (like an icon set), the large side of it;
- the real repositories of ../shared/corpora (with history and real delta chains), when present:
  checked out at HEAD beside the others, and made into images from the repository itself.

A corpus is a directory (`NAME/`) and a bare repository of it (`NAME.git`): the same data serves the directory
and the repository sources.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

WORK = Path(__file__).resolve().parent / "work"
VERSION = "1"  # bump to regenerate every corpus
GIT_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_AUTHOR_NAME": "Bench",
    "GIT_AUTHOR_EMAIL": "bench@docteur.invalid",
    "GIT_COMMITTER_NAME": "Bench",
    "GIT_COMMITTER_EMAIL": "bench@docteur.invalid",
    "GIT_AUTHOR_DATE": "1700000000 +0000",
    "GIT_COMMITTER_DATE": "1700000000 +0000",
    # No background auto-gc racing our explicit one.
    "GIT_CONFIG_COUNT": "1",
    "GIT_CONFIG_KEY_0": "gc.auto",
    "GIT_CONFIG_VALUE_0": "0",
}


@dataclass(frozen=True)
class Corpus:
    name: str
    tree: Path  # the files
    repo: Path | None  # a bare repository whose HEAD commit holds them (None for a directory given alone)
    files: int
    real: bool = False  # a real repository: its image is made from the repository (its own deltas)


def git(root: Path, *args: str) -> bytes:
    """Run git on the corpus at `root`, its repository kept beside it."""
    where = [f"--git-dir={root}.git", f"--work-tree={root}"]
    return subprocess.run(
        ["git", *where, *args], cwd=root, check=True, capture_output=True, env={**os.environ, **GIT_ENV}
    ).stdout


class Prose:
    """Sentences drawn from a fixed vocabulary: text that compresses and deltifies like real prose."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        syllables = ["an", "be", "co", "de", "el", "fa", "gi", "ho", "in", "ju", "ka", "lo", "mu", "ne", "or"]
        words = {"".join(rng.choices(syllables, k=rng.randint(1, 4))) for _ in range(6000)}
        self.words = sorted(words)
        self.sentences = [self._sentence() for _ in range(8000)]

    def _sentence(self) -> str:
        words = self.rng.choices(self.words, k=self.rng.randint(6, 22))
        return " ".join(words).capitalize() + self.rng.choice([".", ".", ".", "?", "!"])

    def paragraph(self, n: int) -> str:
        return " ".join(self.rng.choices(self.sentences, k=n))

    def edit(self, text: str, edits: int) -> str:
        """Replace a few words and insert a sentence: the kind of change a revision makes."""
        words = text.split(" ")
        for _ in range(edits):
            words[self.rng.randrange(len(words))] = self.rng.choice(self.words)
        words.insert(self.rng.randrange(len(words)), self.rng.choice(self.sentences))
        return " ".join(words)


def _write(root: Path, files: dict[str, str | bytes]) -> None:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)


def _first_commit(root: Path, files: dict[str, str | bytes], message: str) -> None:
    """Write `files` under `root` and commit them in a new bare repository beside it."""
    _write(root, files)
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", f"{root}.git"], check=True, env=GIT_ENV)
    _commit_all(root, message)


def _commit_all(root: Path, message: str) -> None:
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", message)


def _book(root: Path) -> None:
    rng = random.Random(3)
    prose = Prose(rng)
    passages = [prose.paragraph(rng.randint(20, 40)) for _ in range(120)]
    files: dict[str, str | bytes] = {}
    for part in range(25):
        for chapter in range(100):
            base = rng.choice(passages)
            body = prose.edit(base, rng.randint(2, 30))
            files[f"part-{part:02d}/chapter-{chapter:03d}.md"] = (
                f"# Part {part}, chapter {chapter}\n\n{body}\n"
            )
    _first_commit(root, files, "first draft")
    names = sorted(files)
    for revision in range(3):  # a few revisions, so that the repository's packs hold deltas
        for name in rng.sample(names, 400):
            files[name] = prose.edit(str(files[name]), 3)
        _write(root, {n: files[n] for n in names})
        _commit_all(root, f"revision {revision}")
    git(root, "gc", "-q", "--aggressive")


def _pages(root: Path) -> None:
    rng = random.Random(5)
    prose = Prose(rng)
    files: dict[str, str | bytes] = {}
    for section in range(20):
        for topic in range(20):
            for page in range(100):
                title = " ".join(rng.choices(prose.words, k=3))
                files[f"s{section:02d}/t{topic:02d}/page-{page:03d}.html"] = (
                    f"<html><head><title>{title}</title></head><body>\n"
                    f'<nav><a href="../index.html">Section {section}</a> / Topic {topic}</nav>\n'
                    f"<h1>{title}</h1>\n<p>{prose.paragraph(rng.randint(1, 4))}</p>\n"
                    "<footer>Generated for the docteur benchmarks.</footer></body></html>\n"
                )
    _first_commit(root, files, "pages")
    git(root, "gc", "-q")


def _large(root: Path) -> None:
    rng = random.Random(7)
    prose = Prose(rng)
    log = "\n".join(prose.paragraph(1) for _ in range(120_000)).encode()
    edited = bytearray(log)
    for _ in range(200):
        at = rng.randrange(len(edited) - 64)
        edited[at : at + 32] = rng.randbytes(32).hex().encode()[:32]
    _first_commit(
        root, {"log.txt": log, "log-edited.txt": bytes(edited), "random.bin": rng.randbytes(8 << 20)}, "large"
    )
    git(root, "gc", "-q")


def _wide(root: Path) -> None:
    rng = random.Random(13)
    prose = Prose(rng)
    files: dict[str, str | bytes] = {"README.md": prose.paragraph(5) + "\n"}
    for i in range(4000):
        title = " ".join(rng.choices(prose.words, k=2))
        files[f"icons/icon-{i:04d}.svg"] = (
            '<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16">'
            f'<title>{title}</title><path d="M{rng.randint(0, 16)} {rng.randint(0, 16)}h{i % 9}"/></svg>\n'
        )
    _first_commit(root, files, "wide")
    git(root, "gc", "-q")


def _tiny(root: Path) -> None:
    rng = random.Random(11)
    prose = Prose(rng)
    _first_commit(root, {f"d{i // 10}/f{i:02d}.txt": prose.paragraph(3) + "\n" for i in range(40)}, "tiny")


GENERATORS: dict[str, Callable[[Path], None]] = {
    "book": _book,
    "pages": _pages,
    "large": _large,
    "tiny": _tiny,
    "wide": _wide,
}


def _shared_corpora() -> Path:
    """../shared/corpora beside the checkout: the nearest ancestor holding one (a worktree under
    /work/wt/ shares the one beside /work/main)."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "shared" / "corpora").is_dir():
            return parent / "shared" / "corpora"
    return here.parent.parent.parent / "shared" / "corpora"


SHARED = _shared_corpora()


def count_files(root: Path) -> int:
    return sum(len(files) for path, _, files in os.walk(root) if ".git" not in Path(path).parts)


def generated(name: str) -> Corpus:
    """The corpus `name`, generating it first when missing or stale."""
    root = WORK / "corpora" / name
    repo = root.with_suffix(".git")
    stamp = repo / "bench-corpus"
    if not (stamp.exists() and stamp.read_text() == VERSION):
        for stale in (root, repo):
            if stale.exists():
                shutil.rmtree(stale)
        root.mkdir(parents=True)
        GENERATORS[name](root)
        stamp.write_text(VERSION)
    return Corpus(name, root, repo, count_files(root))


def shared() -> list[Corpus]:
    """The real repositories of ../shared/corpora, each checked out at HEAD under WORK (once)."""
    found = []
    for repo in sorted(SHARED.glob("*.git")) if SHARED.is_dir() else []:
        head = subprocess.run(
            ["git", f"--git-dir={repo}", "rev-parse", "HEAD"], check=True, capture_output=True, text=True
        ).stdout.strip()
        root = WORK / "corpora" / repo.stem
        stamp = WORK / "corpora" / f"{repo.stem}.head"
        if not (stamp.exists() and stamp.read_text() == head):
            shutil.rmtree(root, ignore_errors=True)
            root.mkdir(parents=True)
            archive = subprocess.run(
                ["git", f"--git-dir={repo}", "archive", "HEAD"], check=True, capture_output=True
            )
            subprocess.run(["tar", "-x", "-C", str(root)], input=archive.stdout, check=True)
            stamp.write_text(head)
        found.append(Corpus(repo.stem, root, repo, count_files(root), real=True))
    return found


def given(path: str) -> Corpus:
    """A directory or a repository (its work tree when it has one) named on the command line."""
    root = Path(path).resolve()
    if not root.is_dir():
        raise SystemExit(f"bench: not a directory: {path}")
    if (root / ".git").is_dir():
        return Corpus(root.name, root, root / ".git", count_files(root))
    if (root / "HEAD").is_file() and (root / "objects").is_dir():
        return Corpus(root.name, root, root, 0)  # a bare repository: no directory to compare with
    return Corpus(root.name, root, None, count_files(root))
