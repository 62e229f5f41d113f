"""The checks of the extension: the table, the padding around each section, every section's checksum, and
the path index rebuilt from the trees and compared with the stored one, entry by entry."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from docteur.blocksize import align
from docteur.bytesource import ByteSource, chunks
from docteur.bytesource.memory import InMemory
from docteur.errors import CorruptImageError
from docteur.git.objects import MODE_DIR
from docteur.pack.reader import PackReader
from docteur.sections import FRAMES, NAMES, PATHS, REFS, refs
from docteur.sections.build import build_paths, frame_files
from docteur.sections.paths import LOCATION_FRAMES, PathIndex, Root, walk
from docteur.sections.table import Section, SectionTable
from docteur.verify.image import is_zero

_DIR_TEXT = b"%o" % MODE_DIR
_FILE_COLUMNS = ("size", "location", "entry length")


def _sha256(source: ByteSource, section: Section) -> bytes:
    h = hashlib.sha256()
    for piece in chunks(source, section.offset, section.length):
        h.update(piece)
    return h.digest()


def check_sections(
    source: ByteSource,
    table: SectionTable,
    device: bool,
    pack: PackReader | None,
    commits: list[bytes],
    framed: dict[bytes, tuple[int, int, int]],
    problem: Callable[[str], None],
) -> None:
    """Check the extension; the path index (which must index `commits`, the header's first) only when
    `pack` (whose objects checked out) is given. `framed`: a zstd image's blobs, checked where they
    lie."""
    at = table.offset + table.length
    for section in table.sections:
        if not is_zero(source, at, section.offset):
            problem(f"padding before the {section.name} section is not all zeros")
        if section.kind not in NAMES:
            problem(f"section {section.name} is unknown to this docteur: it cannot be checked")
        elif _sha256(source, section) != section.checksum:
            problem(f"{section.name} section checksum mismatch")
        at = section.end
    end = align(at, table.block_size) if device else source.size
    if not is_zero(source, at, end):
        problem("padding after the last section is not all zeros")
    paths = table.find(PATHS)
    if paths is not None and pack is not None:
        try:
            stored = bytes(source.read(paths.offset, paths.length))
            _check_paths(stored, pack, commits, framed if table.find(FRAMES) else None, problem)
        except CorruptImageError as e:
            problem(str(e))  # the path index's own errors say "path index:"


def check_refs(
    source: ByteSource, table: SectionTable, header: bytes, problem: Callable[[str], None]
) -> list[tuple[bytes, bytes]]:
    """The refs the refs section records (none without one), the header's commit first."""
    found = table.find(REFS)
    if found is None:
        return []
    try:
        named = refs.decode(bytes(source.read(found.offset, found.length)))
    except CorruptImageError as e:
        problem(str(e))
        return []
    if not named or named[0][1] != header:
        problem("refs section: its first ref is not the header's commit")
    return named


def named_of(named: list[tuple[bytes, bytes]], commit: bytes) -> str:
    return next(n.decode("utf-8", "backslashreplace") for n, c in named if c == commit)


def _check_paths(
    stored: bytes,
    pack: PackReader,
    commits: list[bytes],
    framed: dict[bytes, tuple[int, int, int]] | None,
    problem: Callable[[str], None],
) -> None:
    """Rebuild the path index from the trees (its files where the PACK, or for a zstd image the checked
    frames, hold them) and compare it with the stored one."""
    index = PathIndex(InMemory(stored), 0, len(stored), max_entries=1 << 16)
    indexed = [root.commit for root in index.roots]
    for commit in commits:
        if commit not in indexed:
            problem(f"path index: it does not index commit {commit.hex()}, which the image's refs name")
    # docteur indexes exactly the commits the refs name: one more is a ref moved after the index was made.
    for commit in indexed:
        if commit not in commits:
            problem(f"path index: it indexes commit {commit.hex()}, which none of the image's refs names")
    if framed is None:
        rebuilt = build_paths(pack, indexed)
    else:
        rebuilt = build_paths(pack, indexed, frame_files(framed, set()), LOCATION_FRAMES)
    if rebuilt == stored:
        return
    honest = PathIndex(InMemory(rebuilt), 0, len(rebuilt), max_entries=1 << 16)
    differences: list[str] = []
    for root in honest.roots:
        _compare(honest, index, root, differences.append)
    for text in differences or ["path index: it differs from the one the trees give, in its layout"]:
        problem(text)


def _compare(honest: PathIndex, stored: PathIndex, root: Root, problem: Callable[[str], None]) -> None:
    """Walk the honest index and look each directory up in the stored one, by the same path."""
    found = stored.root(root.commit)
    honest_commit = honest.root(root.commit)
    if found is None or honest_commit is None:
        problem(f"path index: commit {root.commit.hex()} is missing")
        return
    if found[1].subdirs != root.subdirs:
        problem(f"path index: / lists {found[1].subdirs} subdirectories, the tree {root.subdirs}")
    tree = bytes.fromhex(honest_commit[0][5:45].decode("ascii"))
    pointers = {b"": found[1].record}
    for path, expected in walk(honest, root, tree):
        ref = pointers.get(path)
        if ref is None:
            continue  # its parent was already reported
        try:
            got = stored.directory(ref, expected.oid)
        except CorruptImageError as e:
            problem(f"path index: /{_shown(path)}: {e}")
            continue
        prefix = path + b"/" if path else b""
        for i, (mode, name, _) in enumerate(expected.rows):
            labels = ("", "", "subdirectories") if mode == _DIR_TEXT else _FILE_COLUMNS
            wanted = (expected.a[i], expected.b[i], expected.c[i])
            for label, want, have in zip(labels, wanted, (got.a[i], got.b[i], got.c[i]), strict=True):
                if label and want != have:
                    problem(f"path index: /{_shown(prefix + name)}: {label} {have}, the image holds {want}")
            if mode == _DIR_TEXT:
                pointers[prefix + name] = got.children[i]


def _shown(path: bytes) -> str:
    return path.decode("utf-8", "backslashreplace")
