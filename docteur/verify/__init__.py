"""docteur-verify: check everything an image holds, and say what is wrong, one line per problem."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from docteur.bytesource import ByteSource
from docteur.bytesource.location import open_source
from docteur.bytesource.mapped import MappedFile
from docteur.errors import CorruptImageError
from docteur.git.objects import BLOB, CommitInfo
from docteur.image.format import PACK_OFFSET, locate
from docteur.pack.reader import PackReader
from docteur.sections.table import SectionTable, locate_table
from docteur.verify.frames import check_frames
from docteur.verify.image import VERIFY_CACHE_BYTES, ImageChecker
from docteur.verify.sections import check_refs, check_sections, named_of

MAX_PROBLEMS = 100


@dataclass
class Report:
    path: str
    info: CommitInfo | None = None
    problems: list[str] = field(default_factory=list)
    objects: int = 0
    block_size: int | None = None
    size: int = 0
    sections: list[str] = field(default_factory=list)  # the extension's sections, by name
    refs: dict[str, str] = field(default_factory=dict)  # name -> commit, as the refs section records

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(path: str, **remote: Any) -> Report:
    """Check the image at `path` (a file, a device or a URL: see docteur.open) completely."""
    report = Report(path)
    try:
        source = open_source(path, **remote)
    except CorruptImageError as e:
        report.problems.append(str(e))
        return report
    with source:
        report.size = source.size
        # A device, which a VM pads, may be larger than its image; a file (local or remote) may not.
        _check(report, source, device=isinstance(source, MappedFile) and not os.path.isfile(path))
    if len(report.problems) > MAX_PROBLEMS:
        more = len(report.problems) - MAX_PROBLEMS
        report.problems[MAX_PROBLEMS:] = [f"... and {more} more problems"]
    return report


def _check(report: Report, source: ByteSource, device: bool) -> None:
    problem = report.problems.append
    checker = ImageChecker(source, device, problem)
    try:
        placement, index = locate(source)
        table: SectionTable | None = None
        try:
            table = locate_table(source, placement.idx_end)
        except CorruptImageError as e:
            problem(str(e))
        checker.layout(placement, table)
        checker.checksums(placement, index)
        reader = PackReader(
            source, index, at=PACK_OFFSET, length=placement.pack_length, cache_bytes=VERIFY_CACHE_BYTES
        )
        checker.objects(reader, index)
        framed = check_frames(source, table, problem) if table is not None else {}
        checker.kinds.update(dict.fromkeys(framed, BLOB))  # a zstd image's blobs, checked in its frames
        report.info = checker.reachable(reader, placement.commit)
        if table is not None:
            report.sections = [s.name for s in table.sections]
            named = check_refs(source, table, placement.commit, problem)
            report.refs = {n.decode("utf-8", "backslashreplace"): c.hex() for n, c in named}
            for commit in dict.fromkeys(c for _, c in named[1:] if c != placement.commit):
                checker.reachable(reader, commit, what=f"ref {named_of(named, commit)}")
            objects_ok = not report.problems
            commits = list(dict.fromkeys(c for _, c in named)) or [placement.commit]
            check_sections(source, table, device, reader if objects_ok else None, commits, framed, problem)
    except CorruptImageError as e:
        problem(str(e))
    finally:
        report.objects = checker.objects_ok
        report.block_size = checker.block_size


def describe(info: CommitInfo, refs: dict[str, str] | None = None) -> str:
    """The summary OCaml docteur's verify prints: commit, author, root, a blank line, the message; and
    the refs an image records, each checked, before the blank line."""
    name, _, email = info.author.decode("utf-8", "replace").rpartition(" <")
    return (
        f"commit\t: {info.id}\n"
        f'author\t: "{name}" <{email}\n'
        f"root\t: {info.tree}\n"
        + "".join(f"ref\t: {commit} {ref}\n" for ref, commit in (refs or {}).items())
        + "\n"
        + info.message.decode("utf-8", "replace")
    )
