"""Where an image's objects come from: remote and local repositories, and plain directories.

Every source ends as a Snapshot: a Git repository on disk whose object store holds what the image embeds,
the commit to embed, and the exact list of objects to pack.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Snapshot:
    repo_path: str
    commit: bytes  # hex id, as dulwich spells ids
    objects: list[tuple[bytes, bytes]]  # (hex id, path hint for delta search), unique, commit first
    # A directory's objects are staged uncompressed: they must be recompressed, never copied as they are.
    recompress: bool = False
    # The refs the image records, (full name, commit hex id), the header's commit first; empty when the
    # image is of HEAD (or of a directory) alone.
    refs: list[tuple[bytes, bytes]] = field(default_factory=list)
