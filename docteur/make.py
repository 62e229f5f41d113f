"""docteur-make: from a source (remote, repository or directory) to an image, atomically."""

from __future__ import annotations

import contextlib
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from docteur.blocksize import DEFAULT_BLOCK_SIZE, check_block_size
from docteur.compress import check_kind, without_blobs
from docteur.errors import CorruptImageError, DocteurError, SourceError
from docteur.image.writer import write_image
from docteur.pack.engine import build_pack
from docteur.progress import Progress
from docteur.scratch import remove_abandoned, tagged
from docteur.sections.build import SectionData
from docteur.source import Snapshot, spec
from docteur.source.refs import RefSelection

if TYPE_CHECKING:
    from docteur.update.base import Base


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
    selection: RefSelection,
    history: bool,
    when: datetime,
    workdir: Path,
    progress: Progress,
    warn: Callable[[str], None],
    known: Callable[[bytes], bool] | None = None,
) -> Snapshot:
    from docteur.source import repository

    where = spec.parse(source)
    if where.kind == "remote":
        from dulwich.repo import Repo

        from docteur.source import remote

        target = Repo.init_bare(str(workdir / "fetched.git"), mkdir=True)
        wanted = remote.fetch(where.location, selection, history, target)
        return repository.snapshot_of(target, wanted, selection.named, history, progress)
    repo = repository.open_repo(where.location)
    if repo is not None:
        return repository.snapshot(repo, selection, history, progress)
    if selection.asked:
        raise SourceError(f"{selection} given, but {where.location} is a directory, not a repository")
    from docteur.source import directory

    return directory.stage(where.location, when, workdir, progress, warn, known)


def _sections(
    pack: Path, idx: bytes, snapshot: Snapshot, index: bool, blobs: list[bytes] | None, workdir: Path
) -> list[SectionData]:
    """The image's sections, built from the new PACK; without `index`, the same tree checks alone; with
    `blobs` (a zstd image, whose PACK lacks them), those blobs framed too.

    Every tree reachable from the commit is parsed here: a source whose trees the reader would reject
    ('..', '/', duplicates, bad order or modes: git packs such trees, which `git hash-object
    --literally` can forge) is refused, since an image must never hold one.
    """
    from docteur.bytesource.mapped import MappedFile
    from docteur.bytesource.memory import InMemory
    from docteur.idx.reader import PackIndex
    from docteur.pack.reader import PackReader
    from docteur.sections.build import build_sections, check_trees

    named = [(name, bytes.fromhex(commit.decode())) for name, commit in snapshot.refs]
    commits = list(dict.fromkeys(c for _, c in named)) or [bytes.fromhex(snapshot.commit.decode())]
    with MappedFile(pack) as source:
        reader = PackReader(source, PackIndex(InMemory(idx)))
        try:
            if not index:
                check_trees(reader, commits)
                return []
            framed = None
            if blobs is not None:
                from docteur.compress import frame_blobs

                framed = frame_blobs(snapshot.repo_path, blobs, reader, commits, workdir)
            return build_sections(reader, commits, named, framed)
        except CorruptImageError as e:
            raise SourceError(f"malformed source: {e}") from None


SCRATCH_PREFIX = "docteur-make-"


def _based_on(base: str | Path | None) -> contextlib.AbstractContextManager[Base | None]:
    if base is None:
        return contextlib.nullcontext()
    from docteur.update.base import Base

    return Base(base)


def make(
    source: str,
    output: str | Path,
    *,
    branch: str | Sequence[str] | None = None,
    all_branches: bool = False,
    tags: bool = False,
    block_size: int = DEFAULT_BLOCK_SIZE,
    date: datetime | None = None,
    history: bool = False,
    index: bool = True,
    quiet: bool = False,
    warn: Callable[[str], None] = _warn,
    base: str | Path | None = None,
    compress: str = "zlib",
) -> Made:
    """Make the image of `source` at `output`: of the refs `branch` names (one, or several: the header's
    commit is the first's), plus every branch or tag when asked, else of HEAD; without `index`, only what
    OCaml docteur writes (no extension after the IDX, so a single ref). With `base`, an image, objects it
    holds keep its representation and its order (docteur.update.base), so that the update from `base` to
    the result stays small. `compress`: "zlib" (every object in the PACK, as OCaml docteur writes) or
    "zstd" (the files' contents in zstd frames, see docteur.compress)."""
    check_block_size(block_size)
    check_kind(compress)
    if compress == "zstd" and not index:
        raise DocteurError("a zstd image keeps its files in its extension: it needs the index")
    if compress == "zstd" and base is not None:
        raise DocteurError("--base makes zlib images: make the zstd image without it, or convert it")
    names = (branch,) if isinstance(branch, str) else tuple(branch or ())
    selection = RefSelection(names, all_branches, tags)
    if not index and (len(names) > 1 or all_branches or tags):
        raise DocteurError("several refs are recorded in the image's extension: they need the index")
    when = date if date is not None else datetime.now().astimezone()
    output = Path(output)
    progress = Progress(not quiet)
    # A SIGKILLed make leaves its scratch directory: the next one removes it.
    remove_abandoned(Path(tempfile.gettempdir()), SCRATCH_PREFIX)
    with tempfile.TemporaryDirectory(prefix=tagged(SCRATCH_PREFIX)) as scratch, _based_on(base) as based:
        workdir = Path(scratch)
        known = based.known if based is not None else None
        snapshot = _snapshot(source, selection, history, when, workdir, progress, warn, known)
        if based is not None:
            snapshot = based.adopt(snapshot, workdir)
        size = write_snapshot(snapshot, output, workdir, block_size, index, compress, progress, warn)
    return Made(snapshot.commit.decode(), len(snapshot.objects), size)


def write_snapshot(
    snapshot: Snapshot,
    output: Path,
    workdir: Path,
    block_size: int,
    index: bool,
    compress: str,
    progress: Progress,
    warn: Callable[[str], None],
) -> int:
    """Pack `snapshot` into the image at `output` (its objects in the PACK, or for zstd its blobs in
    frames), with its sections; the image's size. What make and convert share."""
    packed, blobs = without_blobs(snapshot) if compress == "zstd" else (snapshot, None)
    pack, idx = build_pack(packed, workdir, progress.enabled, warn)
    commit = bytes.fromhex(snapshot.commit.decode())
    sections = _sections(pack, idx, snapshot, index, blobs, workdir)
    progress.start("writing image")
    size = write_image(output, commit, pack, idx, block_size, sections)
    progress.finish()
    return size
