"""docteur-make: from a source (remote, repository or directory) to an image, atomically."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from docteur.errors import CorruptImageError, DocteurError, SourceError
from docteur.image.format import DEFAULT_BLOCK_SIZE, check_block_size
from docteur.image.writer import write_image
from docteur.pack.engine import build_pack
from docteur.progress import Progress
from docteur.source import Snapshot, spec


@dataclass(frozen=True)
class Made:
    commit: str
    objects: int
    size: int


def parse_date(text: str) -> datetime:
    """An RFC 3339 date-time with its offset, e.g. 2020-10-10T08:00:00+00:00 or ...Z."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise DocteurError(f"invalid date (RFC 3339 expected): {text!r}") from None
    if when.tzinfo is None:
        raise DocteurError(f"date has no time zone offset (RFC 3339 expected): {text!r}")
    return when


def _warn(message: str) -> None:
    print(f"docteur-make: warning: {message}", file=sys.stderr)


def _snapshot(
    source: str,
    branch: str | None,
    history: bool,
    when: datetime,
    workdir: Path,
    progress: Progress,
    warn: Callable[[str], None],
) -> Snapshot:
    from docteur.source import repository

    where = spec.parse(source)
    if where.kind == "remote":
        from dulwich.repo import Repo

        from docteur.source import remote

        target = Repo.init_bare(str(workdir / "fetched.git"), mkdir=True)
        wanted = remote.fetch(where.location, branch, history, target)
        return repository.snapshot_of(target, wanted, history, progress)
    repo = repository.open_repo(where.location)
    if repo is not None:
        return repository.snapshot(repo, branch, history, progress)
    if branch is not None:
        raise SourceError(f"-b {branch} given, but {where.location} is a directory, not a repository")
    from docteur.source import directory

    return directory.stage(where.location, when, workdir, progress, warn)


def _check_trees(pack: Path, idx: bytes, commit: bytes) -> None:
    """Refuse a source whose trees the reader would reject ('..', '/', duplicates, bad order or modes).

    Git itself packs such trees (they can be forged with `git hash-object --literally`); an image must
    never hold one, so every tree reachable from the commit is parsed once here, from the new PACK.
    """
    from docteur.bytesource.mapped import MappedFile
    from docteur.bytesource.memory import InMemory
    from docteur.git.objects import MODE_DIR, TREE, parse_commit, parse_valid_tree
    from docteur.idx.reader import PackIndex
    from docteur.pack.reader import PackReader

    with MappedFile(pack) as source:
        reader = PackReader(source, PackIndex(InMemory(idx)))
        pending = [bytes.fromhex(parse_commit(commit.hex(), reader.get(commit)[1]).tree)]
        seen: set[bytes] = set()
        while pending:
            tree = pending.pop()
            if tree in seen:
                continue
            seen.add(tree)
            kind, data = reader.get(tree)
            if kind != TREE:
                raise SourceError(f"object {tree.hex()} in the source should be a tree")
            try:
                entries = parse_valid_tree(data, tree.hex())
            except CorruptImageError as e:
                raise SourceError(f"malformed source: {e}") from None
            pending.extend(e.oid for e in entries if e.mode == MODE_DIR)


SCRATCH_PREFIX = "docteur-make-"


def _remove_abandoned_scratch() -> None:
    """Remove scratch directories of makes that were killed (SIGKILL skips every cleanup).

    A scratch directory is named after its make's pid: one whose process is gone is removed. A pid
    reused by another process keeps its directory, which is the safe side.
    """
    root = Path(tempfile.gettempdir())
    for leftover in root.glob(f"{SCRATCH_PREFIX}*-*"):
        pid = leftover.name[len(SCRATCH_PREFIX) :].split("-", 1)[0]
        if pid.isdigit() and leftover.is_dir() and not _alive(int(pid)):
            shutil.rmtree(leftover, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def make(
    source: str,
    output: str | Path,
    *,
    branch: str | None = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
    date: datetime | None = None,
    history: bool = False,
    quiet: bool = False,
    warn: Callable[[str], None] = _warn,
) -> Made:
    check_block_size(block_size)
    when = date if date is not None else datetime.now().astimezone()
    output = Path(output)
    progress = Progress(not quiet)
    _remove_abandoned_scratch()
    with tempfile.TemporaryDirectory(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-") as scratch:
        workdir = Path(scratch)
        snapshot = _snapshot(source, branch, history, when, workdir, progress, warn)
        pack, idx = build_pack(snapshot, workdir, progress.enabled, warn)
        commit = bytes.fromhex(snapshot.commit.decode())
        _check_trees(pack, idx, commit)
        progress.start("writing image")
        size = write_image(output, commit, pack, idx, block_size)
        progress.finish()
    return Made(snapshot.commit.decode(), len(snapshot.objects), size)
