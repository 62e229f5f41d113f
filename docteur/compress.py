"""The two kinds of image: zlib (OCaml docteur's: every object a PACK entry) and zstd (the PACK holds the
commits and the trees, so every id is the zlib image's; the files' contents go to zstd frames).

What docteur-make and docteur convert share: parting a snapshot's objects, and framing its blobs in the
order that compresses best (the trees' order: a folder's files together).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

from docteur.errors import DocteurError
from docteur.git.objects import COMMIT, MODE_DIR, MODE_GITLINK, TREE, parse_commit, tree_rows
from docteur.pack.reader import PackReader
from docteur.source import Snapshot
from docteur.zstd import frames

KINDS = ("zlib", "zstd")
_DIR_TEXT = b"%o" % MODE_DIR
_GITLINK_TEXT = b"%o" % MODE_GITLINK


def check_kind(compress: str) -> None:
    if compress not in KINDS:
        raise DocteurError(f"unknown compression {compress!r}: zlib or zstd")


def without_blobs(snapshot: Snapshot) -> tuple[Snapshot, list[bytes]]:
    """The snapshot of the commits and trees alone (what a zstd image's PACK holds), and the blobs' ids."""
    from docteur.source import repository

    kinds = repository.object_kinds(snapshot.repo_path, [oid for oid, _ in snapshot.objects])
    kept = [item for item, kind in zip(snapshot.objects, kinds, strict=True) if kind != b"blob"]
    blobs = [oid for (oid, _), kind in zip(snapshot.objects, kinds, strict=True) if kind == b"blob"]
    return dataclasses.replace(snapshot, objects=kept), blobs


def tree_order(pack: PackReader, commits: list[bytes]) -> Iterator[bytes]:
    """The blobs below the commits' trees, each once, in pre-order (a folder's files, then its
    subfolders), the first commit's first."""
    seen: set[bytes] = set()
    for commit in commits:
        kind, data = pack.get(commit)
        if kind != COMMIT:
            raise DocteurError(f"{commit.hex()} is not a commit")
        pending = [bytes.fromhex(parse_commit(commit.hex(), data).tree)]
        while pending:
            tree = pending.pop()
            if tree in seen:
                continue
            seen.add(tree)
            kind, data = pack.get(tree)
            if kind != TREE:
                raise DocteurError(f"{tree.hex()} is not a tree")
            subtrees = []
            for mode, _, oid in tree_rows(data, tree)[0]:
                if mode == _DIR_TEXT:
                    subtrees.append(oid)
                elif mode != _GITLINK_TEXT and oid not in seen:
                    seen.add(oid)
                    yield oid
            pending.extend(reversed(subtrees))


def frame_blobs(
    repo_path: str, blobs: list[bytes], pack: PackReader, commits: list[bytes], workdir: Path
) -> frames.Written:
    """The frames of `blobs` (hex ids, read from the repository at `repo_path`): those of the commits'
    trees in their order, then the others (a history's) in theirs."""
    from docteur.source import repository

    ordered = [oid.hex().encode() for oid in tree_order(pack, commits)]
    placed = set(ordered)
    ordered += [oid for oid in blobs if oid not in placed]
    return frames.write(repository.read_blobs(repo_path, ordered, workdir))
