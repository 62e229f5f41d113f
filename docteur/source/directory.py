"""A plain directory as a Snapshot: blobs, trees and the commit OCaml docteur would make for it.

The same directory and date give the same commit id as OCaml docteur: author and committer
"Dr. Greenthumb <noreply@cypress.hill>" at the date, and no message (the commit ends after the committer
line). Objects are staged, uncompressed, in a PACK of a scratch bare repository so that the packing
engine (git pack-objects, or dulwich) can read them like any repository's.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from docteur.errors import SourceError
from docteur.git.objects import (
    BLOB,
    COMMIT,
    MODE_DIR,
    MODE_EXEC,
    MODE_FILE,
    MODE_LINK,
    TREE,
    TreeEntry,
    encode_tree,
)
from docteur.progress import Progress
from docteur.source import Snapshot
from docteur.source.staging import Staging

AUTHOR = b"Dr. Greenthumb <noreply@cypress.hill>"


def signature_time(when: datetime) -> bytes:
    """'1602316800 +0000' for a timezone-aware datetime."""
    offset = when.utcoffset()
    minutes = int(offset.total_seconds()) // 60 if offset is not None else 0
    sign = "-" if minutes < 0 else "+"
    minutes = abs(minutes)
    return b"%d %s%02d%02d" % (int(when.timestamp()), sign.encode(), minutes // 60, minutes % 60)


def encode_commit(tree: bytes, when: datetime) -> bytes:
    signature = AUTHOR + b" " + signature_time(when)
    return b"tree %s\nauthor %s\ncommitter %s\n" % (tree.hex().encode(), signature, signature)


@dataclass
class _Frame:
    """A directory being read: its entries still to visit and the tree entries made so far."""

    path: bytes
    rel: bytes
    pending: list[os.DirEntry[bytes]]
    done: list[TreeEntry] = field(default_factory=list)


def _scan(path: bytes) -> list[os.DirEntry[bytes]]:
    try:
        with os.scandir(path) as it:
            # Reversed so that pop() visits names in order: the object order is reproducible.
            return sorted(it, key=lambda e: e.name, reverse=True)
    except OSError as e:
        raise SourceError(f"cannot read directory {os.fsdecode(path)}: {e.strerror}") from None


def _read(path: bytes, size: int) -> bytes:
    """The content of a file whose size lstat gave: open, one read, close (buffered I/O costs three more
    system calls per file, a third of the staging time on many small files)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        try:
            data = os.read(fd, size + 1)  # one byte more: a file that grew since lstat shows it
            if len(data) != size:  # it changed since lstat, or one read stopped short (over 2 GiB)
                chunks = [data]
                while chunk := os.read(fd, 1 << 20):
                    chunks.append(chunk)
                data = b"".join(chunks)
        finally:
            os.close(fd)
    except OSError as e:
        raise SourceError(f"cannot read {os.fsdecode(path)}: {e.strerror}") from None
    return data


class _Stager:
    def __init__(self, staging: Staging, progress: Progress, warn: Callable[[str], None]) -> None:
        self.staging = staging
        self.progress = progress
        self.warn = warn

    def add(self, kind: int, data: bytes, hint: bytes) -> bytes:
        before = len(self.staging.order)
        oid = self.staging.add(kind, data, hint)
        if len(self.staging.order) != before:
            self.progress.advance()
        return oid

    def entry(self, item: os.DirEntry[bytes], rel: bytes) -> TreeEntry | None:
        """The tree entry for a file or symlink; None (with a warning) for fifos, sockets, devices."""
        try:
            st = item.stat(follow_symlinks=False)
        except OSError as e:
            raise SourceError(f"cannot stat {os.fsdecode(item.path)}: {e.strerror}") from None
        if stat.S_ISLNK(st.st_mode):
            try:
                target = os.readlink(item.path)
            except OSError as e:
                raise SourceError(f"cannot read link {os.fsdecode(item.path)}: {e.strerror}") from None
            return TreeEntry(item.name, MODE_LINK, self.add(BLOB, target, rel))
        if stat.S_ISREG(st.st_mode):
            mode = MODE_EXEC if st.st_mode & stat.S_IXUSR else MODE_FILE
            return TreeEntry(item.name, mode, self.add(BLOB, _read(item.path, st.st_size), rel))
        self.warn(f"skipping {os.fsdecode(item.path)}: not a regular file, directory or symlink")
        return None

    def tree(self, root: bytes) -> bytes:
        """Stage every object below `root`, depth first without recursion; return the root tree id."""
        frames = [_Frame(root, b"", _scan(root))]
        while True:
            frame = frames[-1]
            if frame.pending:
                item = frame.pending.pop()
                rel = frame.rel + b"/" + item.name if frame.rel else item.name
                if item.is_dir(follow_symlinks=False):
                    frames.append(_Frame(item.path, rel, _scan(item.path)))
                elif (made := self.entry(item, rel)) is not None:
                    frame.done.append(made)
                continue
            oid = self.add(TREE, encode_tree(frame.done), frame.rel)
            frames.pop()
            if not frames:
                return oid
            frames[-1].done.append(TreeEntry(os.path.basename(frame.path), MODE_DIR, oid))


def stage(
    directory: str,
    when: datetime,
    workdir: Path,
    progress: Progress,
    warn: Callable[[str], None],
    known: Callable[[bytes], bool] | None = None,
) -> Snapshot:
    """The snapshot of `directory`. With `known` (make --base), objects it knows are not staged (the
    base image's PACK holds them) and the others are deflated as git would, for git to reuse as they are.
    """
    if not os.path.isdir(directory):
        raise SourceError(f"source is not a directory or a repository: {directory}")
    progress.start("reading files")
    staging = Staging(workdir, known)
    stager = _Stager(staging, progress, warn)
    tree = stager.tree(os.fsencode(directory))
    commit = stager.add(COMMIT, encode_commit(tree, when), b"")
    repo_path, objects = staging.finish(commit)
    progress.finish()
    return Snapshot(repo_path, commit.hex().encode(), objects, recompress=True)
