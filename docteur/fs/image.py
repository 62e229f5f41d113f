"""The reader: an image opened like a zip archive, the view of its header's commit (see view.py), and of
any other commit it holds through at()."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator

from docteur.bytesource import ByteSource
from docteur.bytesource.location import open_source
from docteur.bytesource.mapped import DEFAULT_MAPPED_BYTES
from docteur.errors import CorruptImageError
from docteur.fs.contents import FrameContents, PackContents
from docteur.fs.indexed import IndexedLayout
from docteur.fs.objects import ImageObjects
from docteur.fs.view import BlobFile, Stat, View
from docteur.git.objects import (
    COMMIT,
    MODE_DIR,
    MODE_GITLINK,
    TREE,
    CommitInfo,
    TreeRow,
    parse_commit,
    tree_rows,
)
from docteur.git.refs import ref_candidates
from docteur.image.format import PACK_OFFSET, Placement, locate
from docteur.pack.reader import DEFAULT_CACHE_BYTES, DEFAULT_MAX_OBJECT_SIZE, PackReader
from docteur.pack.store import ObjectStore
from docteur.sections import BLOBS, DICTIONARY, FRAMES, PATHS, REFS, refs
from docteur.sections.blobs import BlobTable
from docteur.sections.paths import LOCATION_FRAMES, PathIndex, walk
from docteur.sections.table import SectionTable, locate_table
from docteur.zstd.frames import FramesReader

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["BlobFile", "Image", "Stat", "View"]

# Directory entries held in memory by default: the path index's records, or the trie's trees.
DEFAULT_MAX_ENTRIES = 1 << 13  # ~250 bytes each
_HEX_ID = re.compile(r"^[0-9a-f]{40}$")
_NOT_FILES = (b"%o" % MODE_DIR, b"%o" % MODE_GITLINK)


class Image(View):
    """A docteur image opened for reading: a regular file, a raw block device, or any byte source.

    Every length comes from the header and the IDX, never from the file size, so a block device padded
    with zeros (as a VM disk is) reads the same as the file it was copied from.

    With a path index (the extension's paths section), a lookup is a search in the index's records,
    read in place; without one (OCaml docteur's and older images), the trees are parsed into a trie as
    they are needed. Either way every object served is checked against the id its commit's trees give.

    Memory stays bounded whatever the image size: `cache_bytes` of inflated objects (repeated reads,
    delta bases) plus the last object too large for them, about `mapped_bytes` of the mapped image
    resident at a time, and `layout_entries` directory entries parsed (per view).
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | ByteSource,
        *,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        max_object_size: int = DEFAULT_MAX_OBJECT_SIZE,
        mapped_bytes: int = DEFAULT_MAPPED_BYTES,
        layout_entries: int = DEFAULT_MAX_ENTRIES,
        **remote: Any,
    ) -> None:
        """`path` is a file, a block device, an http(s) URL (or another fsspec URL) or a byte source;
        `remote` holds a remote image's options (see docteur.bytesource.location.open_source)."""
        if isinstance(path, ByteSource):
            self.source: ByteSource = path
        else:
            self.source = open_source(path, mapped_bytes=mapped_bytes, **remote)
        self.path = self.source.name
        self._layout_entries = layout_entries
        try:
            self.placement: Placement
            self.placement, index = locate(self.source)
            pack = PackReader(
                self.source,
                index,
                at=PACK_OFFSET,
                length=self.placement.pack_length,
                cache_bytes=cache_bytes,
                max_object_size=max_object_size,
            )
            self._pack = pack
            self.sections: SectionTable | None = locate_table(self.source, self.placement.idx_end)
            self._paths = self._path_index()
            self.refs: dict[str, str] = self._refs()
            self._contents = self._contents_of(max_object_size, cache_bytes)
            view = self._view_of(self.placement.commit)
        except BaseException:
            self.close()
            raise
        super().__init__(view.info, view._layout, pack, self._contents)

    def _path_index(self) -> PathIndex | None:
        found = self.sections.find(PATHS) if self.sections is not None else None
        if found is None:
            return None
        return PathIndex(self.source, found.offset, found.length, max_entries=self._layout_entries)

    def _contents_of(self, max_object_size: int, cache_bytes: int) -> PackContents | FrameContents:
        """Where files are read from: the PACK, or (a zstd image) the frames section."""
        frames = self.sections.find(FRAMES) if self.sections is not None else None
        store = ObjectStore(self._pack)
        if frames is None:
            self.objects: ObjectStore = store
            return PackContents(self._pack)
        assert self.sections is not None
        if self._paths is None or self._paths.location != LOCATION_FRAMES:
            raise CorruptImageError("a zstd image needs a path index that locates files in its frames")
        dictionary = self.sections.find(DICTIONARY)
        reader = FramesReader(
            self.source,
            frames.offset,
            frames.length,
            dictionary=None if dictionary is None else (dictionary.offset, dictionary.length),
            cache_bytes=cache_bytes,
        )
        table = self.sections.find(BLOBS)
        self._history_blobs = None if table is None else BlobTable(self.source, table.offset, table.length)
        self._indexed_blobs: dict[bytes, tuple[int, int, int]] | None = None
        self.objects = ImageObjects(store, self._framed, self._framed_ids, lambda w: reader.read(*w))
        return FrameContents(reader, self._framed, max_object_size)

    def _framed(self, oid: bytes) -> tuple[int, int, int] | None:
        """Where a zstd image's blob lies: the blobs section (history), else the indexed trees."""
        found = self._history_blobs.find(oid) if self._history_blobs is not None else None
        return found if found is not None else self._indexed().get(oid)

    def _framed_ids(self) -> Iterator[bytes]:
        if self._history_blobs is not None:
            yield from (oid for oid, _ in self._history_blobs)
        yield from self._indexed()

    def _indexed(self) -> dict[bytes, tuple[int, int, int]]:
        """The blobs of every indexed tree and their locations, gathered once when first needed (a lookup
        by id, not by path: 9P's /trees, or the trees of a commit the index does not hold)."""
        if self._indexed_blobs is None:
            found: dict[bytes, tuple[int, int, int]] = {}
            assert self._paths is not None
            for root in self._paths.roots:
                data, _ = self._paths.root(root.commit)  # type: ignore[misc]
                tree = bytes.fromhex(parse_commit(root.commit.hex(), data).tree)
                for _, directory in walk(self._paths, root, tree):
                    for i, (mode, _, oid) in enumerate(directory.rows):
                        if mode not in _NOT_FILES:
                            found.setdefault(oid, (directory.b[i], directory.c[i], directory.a[i]))
            self._indexed_blobs = found
        return self._indexed_blobs

    def _refs(self) -> dict[str, str]:
        """name -> commit: what the refs section records, else the header's commit as HEAD."""
        found = self.sections.find(REFS) if self.sections is not None else None
        if found is None:
            return {"HEAD": self.placement.commit.hex()}
        named = refs.decode(bytes(self.source.read(found.offset, found.length)))
        if not named or named[0][1] != self.placement.commit:
            raise CorruptImageError("refs section: its first ref is not the header's commit")
        return {name.decode("utf-8", "surrogateescape"): commit.hex() for name, commit in named}

    def _view_of(self, commit: bytes) -> View:
        """The view of `commit`: through the path index when it indexes that commit, else its trees."""
        rooted = self._paths.root(commit) if self._paths is not None else None
        if rooted is not None:
            data, root = rooted
        else:
            kind, data = self._get(commit, "commit")
            if kind != COMMIT:
                raise CorruptImageError(f"{commit.hex()} is not a commit")
        info: CommitInfo = parse_commit(commit.hex(), data)
        tree = bytes.fromhex(info.tree)
        if rooted is not None and self._paths is not None:
            return View(info, IndexedLayout(self._paths, root, tree), self._pack, self._contents)
        from docteur.fs.layout import TrieLayout  # datrie: imported only where no index serves

        layout = TrieLayout(tree, self._tree_rows, self._layout_entries)
        return View(info, layout, self._pack, self._contents)

    def at(self, ref: str) -> View:
        """A read-only view of another commit of the image, with the same API: a ref as `refs` names it
        ("refs/heads/main"), a short one as git resolves it ("main", a tag), "HEAD", or a commit id (any
        commit the image holds, its history included). The view lives as long as the image."""
        for name in ref_candidates(ref):
            found = self.refs.get(name.decode("utf-8", "surrogateescape"))
            if found is not None:
                return self._view_of(bytes.fromhex(found))
        if ref == "HEAD":
            return self._view_of(self.placement.commit)
        if _HEX_ID.match(ref):
            try:
                return self._view_of(bytes.fromhex(ref))
            except CorruptImageError as e:
                if "missing" not in str(e):
                    raise
        raise KeyError(f"no ref or commit {ref!r} in the image")

    @property
    def frame_count(self) -> int:
        """How many zstd frames hold the files (0: a zlib image, whose files are PACK entries)."""
        return self._contents.frames.count if isinstance(self._contents, FrameContents) else 0

    @property
    def end(self) -> int:
        """Where the image's data ends (its last section, or its IDX): what a disk holding it must hold."""
        return self.sections.end if self.sections is not None else self.placement.idx_end

    def _get(self, oid: bytes, what: str) -> tuple[int, bytes]:
        try:
            return self._pack.get(oid)
        except KeyError:
            raise CorruptImageError(f"{what} {oid.hex()} is missing from the image") from None

    def _tree_rows(self, oid: bytes) -> tuple[list[TreeRow], tuple[bytes, ...], object]:
        kind, data = self._get(oid, "tree")
        if kind != TREE:
            raise CorruptImageError(f"object {oid.hex()} should be a tree")
        return tree_rows(data, oid)

    # -- lifetime ------------------------------------------------------------------------------------

    def close(self) -> None:
        self.source.close()

    def __enter__(self) -> Image:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<docteur.Image {self.path!r} commit={self.commit}>"
