"""`docteur info`: what an image holds and how well it packs, read cheaply (no object is inflated whole).

Only tree objects are parsed and object headers read: a large image is summarised in the time it takes to
list its tree, unlike docteur-verify which inflates and hashes everything.
"""

from __future__ import annotations

import os
import stat as stat_module
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from docteur.blocksize import consistent_block_sizes
from docteur.bytesource.mapped import MappedFile
from docteur.fs.image import Image
from docteur.git.objects import MODE_DIR, MODE_GITLINK, MODE_LINK, parse_commit
from docteur.image.format import PACK_OFFSET
from docteur.sections import DICTIONARY, FRAMES


@dataclass(frozen=True)
class Summary:
    image: str
    commit: str
    root: str
    commit_time: str
    history_depth: int  # commits of the embedded history (1 unless made with --history)
    objects: int
    files: int
    directories: int
    symlinks: int
    submodules: int
    content_bytes: int  # total size of the files and link targets of the tree
    image_bytes: int
    pack_bytes: int
    idx_bytes: int
    block_size: int | None  # recorded by the section table, else inferred; None when no power of two fits
    compression_ratio: float  # content_bytes / what holds it: the PACK, or for zstd the PACK and frames
    compression: str  # zlib (every object in the PACK) or zstd (files in zstd frames)
    frames: int  # zstd: how many frames
    frames_bytes: int  # zstd: the frames section's size
    dictionary_bytes: int  # zstd: the dictionary section's size (0: none)
    indexed: bool  # lookups use the image's path index
    refs: dict[str, str]  # name -> commit (an image of HEAD alone: HEAD)
    sections: list[dict[str, int | str]]  # the extension's sections: name, offset, length

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _history_depth(img: Image) -> int:
    seen = {img.commit}
    pending = [img.info]
    while pending:
        for parent in pending.pop().parents:
            if parent in seen or parent not in img.objects:
                continue
            kind, data = img.objects.get(parent)
            if kind == "commit":
                seen.add(parent)
                pending.append(parse_commit(parent, data))
    return len(seen)


def _size_of(img: Image) -> tuple[int, bool]:
    """The size of what holds the image, and whether it is a file (a device may be padded)."""
    if not isinstance(img.source, MappedFile):
        return img.source.size, True  # a remote file
    fd = os.open(img.path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return os.lseek(fd, 0, os.SEEK_END), stat_module.S_ISREG(os.fstat(fd).st_mode)
    finally:
        os.close(fd)


def summarize(img: Image) -> Summary:
    counts = {MODE_DIR: 0, MODE_LINK: 0, MODE_GITLINK: 0}
    files = content = 0
    pending = [""]
    while pending:
        directory = pending.pop()
        for name, st in img.scandir(directory):
            if st.mode in counts:
                counts[st.mode] += 1
            else:
                files += 1
            if st.mode == MODE_DIR:
                pending.append(f"{directory}/{name}" if directory else name)
            content += st.size
    size, regular = _size_of(img)
    sections = img.placement
    table = img.sections
    if table is not None:
        block_size: int | None = table.block_size
    else:
        end = PACK_OFFSET + sections.pack_length
        fits = consistent_block_sizes(end, sections.idx_offset, sections.idx_end, size if regular else None)
        block_size = fits[-1] if fits else None
    when = datetime.fromtimestamp(img.info.commit_time, UTC)
    framed = table.find(FRAMES) if table is not None else None
    dictionary = table.find(DICTIONARY) if table is not None else None
    frames_bytes = framed.length if framed is not None else 0
    return Summary(
        image=img.path,
        commit=img.commit,
        root=img.tree,
        commit_time=when.isoformat(),
        history_depth=_history_depth(img),
        objects=len(img.objects),
        files=files,
        directories=counts[MODE_DIR],
        symlinks=counts[MODE_LINK],
        submodules=counts[MODE_GITLINK],
        content_bytes=content,
        image_bytes=size,
        pack_bytes=sections.pack_length,
        idx_bytes=sections.idx_length,
        block_size=block_size,
        compression_ratio=round(content / (sections.pack_length + frames_bytes), 3),
        compression="zstd" if framed is not None else "zlib",
        frames=img.frame_count,
        frames_bytes=frames_bytes,
        dictionary_bytes=dictionary.length if dictionary is not None else 0,
        indexed=img.indexed,
        refs=img.refs,
        sections=[
            {"name": s.name, "offset": s.offset, "length": s.length}
            for s in (table.sections if table is not None else ())
        ],
    )


def describe(s: Summary) -> str:
    block = str(s.block_size) if s.block_size else "unknown"
    return (
        f"image\t: {s.image}\n"
        f"commit\t: {s.commit}\n"
        + "".join(f"ref\t: {commit} {name}\n" for name, commit in s.refs.items() if name != "HEAD")
        + f"root\t: {s.root}\n"
        f"date\t: {s.commit_time}\n"
        f"history\t: {s.history_depth} commit{'s' if s.history_depth != 1 else ''}\n"
        f"objects\t: {s.objects}\n"
        f"tree\t: files {s.files}, directories {s.directories}, symlinks {s.symlinks}, "
        f"submodules {s.submodules}\n"
        f"content\t: {s.content_bytes} bytes\n"
        f"kind\t: {s.compression}"
        + (
            f", {s.frames} frame{'s' if s.frames != 1 else ''} of {s.frames_bytes} bytes, "
            + (f"dictionary {s.dictionary_bytes} bytes" if s.dictionary_bytes else "no dictionary")
            if s.compression == "zstd"
            else ""
        )
        + f" (ratio {s.compression_ratio:.2f})\n"
        f"pack\t: {s.pack_bytes} bytes\n"
        f"idx\t: {s.idx_bytes} bytes\n"
        f"size\t: {s.image_bytes} bytes, block size {block}\n"
        + "".join(
            f"section\t: {x['name']}, {x['length']} bytes at {x['offset']}"
            f" ({100 * int(x['length']) / s.image_bytes:.1f}% of the image)\n"
            for x in s.sections
        )
        + ("" if s.sections else "section\t: none (no path index: lookups parse the trees)\n")
    )
