"""Between commits of an image: the files that differ (as DataKit's diff/ lists them) and the history.

The diff walks the two trees side by side in Git order and goes down only where a directory's tree id
differs, so its cost follows the change, not the size of the tree.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator

from docteur.errors import CorruptImageError
from docteur.git.objects import MODE_DIR, CommitInfo, TreeRow

ADDED, REMOVED, MODIFIED = "+", "-", "*"
_DIR_TEXT = b"%o" % MODE_DIR

LoadTree = Callable[[bytes], list[TreeRow]]
LoadCommit = Callable[[bytes], CommitInfo | None]


def _files(load: LoadTree, tree: bytes, prefix: bytes) -> Iterator[bytes]:
    """Every file below a tree (what an added or removed directory adds or removes)."""
    pending = [(tree, prefix)]
    while pending:
        oid, where = pending.pop()
        later = []
        for mode, name, child in load(oid):
            if mode == _DIR_TEXT:
                later.append((child, where + name + b"/"))
            else:
                yield where + name
        pending.extend(reversed(later))


def _key(row: TreeRow) -> bytes:
    """A row's name as Git sorts it: a directory's with '/' after it (a file and a directory of one name
    are two entries, not one changed)."""
    return row[1] + b"/" if row[0] == _DIR_TEXT else row[1]


def diff_trees(load: LoadTree, old: bytes, new: bytes) -> list[tuple[str, bytes]]:
    """(ADDED | REMOVED | MODIFIED, path) of every file that differs from tree `old` to tree `new`, in
    Git order. A file whose content, mode or kind (file, symlink) changed is MODIFIED; a file that
    became a directory is REMOVED and the directory's files ADDED."""
    out: list[tuple[str, bytes]] = []
    pending = [(old, new, b"")]
    while pending:
        a, b, prefix = pending.pop()
        left, right = load(a), load(b)
        # The rows both trees hold (most of them) are set aside in C; only the others are looked at.
        same = set(left).intersection(right)
        gone = {_key(row): row for row in left if row not in same}
        came = {_key(row): row for row in right if row not in same}
        for key, row in gone.items():
            other = came.get(key)
            if other is None:
                out += _changes(load, REMOVED, row, prefix)
            elif row[0] == _DIR_TEXT:  # the same key: both directories, with different trees
                pending.append((row[2], other[2], prefix + row[1] + b"/"))
            else:
                out.append((MODIFIED, prefix + row[1]))
        for key, row in came.items():
            if key not in gone:
                out += _changes(load, ADDED, row, prefix)
    return sorted(out, key=lambda change: change[1])


def _changes(load: LoadTree, what: str, row: TreeRow, prefix: bytes) -> list[tuple[str, bytes]]:
    mode, name, oid = row
    if mode == _DIR_TEXT:
        return [(what, path) for path in _files(load, oid, prefix + name + b"/")]
    return [(what, prefix + name)]


def history(load: LoadCommit, start: CommitInfo, limit: int | None = None) -> Iterator[CommitInfo]:
    """The commits reachable from `start` that the image holds, newest first as `git log` lists them
    (by committer date, a commit met earlier first among equal dates)."""
    seen = {start.id}
    queue: list[tuple[int, int, CommitInfo]] = [(-start.commit_time, 0, start)]
    counter = 1
    shown = 0
    while queue and (limit is None or shown < limit):
        _, _, info = heapq.heappop(queue)
        yield info
        shown += 1
        for parent in info.parents:
            if parent in seen:
                continue
            seen.add(parent)
            found = load(bytes.fromhex(parent))
            if found is None:
                continue  # beyond a shallow image's history
            if found.id != parent:
                raise CorruptImageError(f"commit {parent} is not what its child names")
            heapq.heappush(queue, (-found.commit_time, counter, found))
            counter += 1
