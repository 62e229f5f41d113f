"""The reader: an image opened like a zip archive, the view of its header's commit (see view.py), and of
any other commit it holds through at()."""

from __future__ import annotations

import os
import re
from collections import OrderedDict

from docteur.bytesource import ByteSource
from docteur.bytesource.location import open_source
from docteur.bytesource.mapped import DEFAULT_MAPPED_BYTES
from docteur.errors import CorruptImageError
from docteur.fs.indexed import IndexedLayout
from docteur.fs.view import BlobFile, Stat, View
from docteur.git.objects import COMMIT, TREE, CommitInfo, TreeRow, parse_commit, tree_rows
from docteur.git.refs import ref_candidates
from docteur.image.format import PACK_OFFSET, Placement, locate
from docteur.pack.reader import DEFAULT_CACHE_BYTES, DEFAULT_MAX_OBJECT_SIZE, PackReader
from docteur.pack.store import ObjectStore
from docteur.sections import PATHS, REFS, refs
from docteur.sections.paths import PathIndex
from docteur.sections.table import SectionTable, locate_table

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["BlobFile", "Image", "Stat", "View"]

# Directory entries held in memory by default: the path index's records, or the trie's trees.
DEFAULT_MAX_ENTRIES = 1 << 13  # ~250 bytes each
_HEX_ID = re.compile(r"^[0-9a-f]{40}$")


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
        self._checked: OrderedDict[int, bytes] = OrderedDict()
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
            self.objects = ObjectStore(pack)
            view = self._view_of(self.placement.commit)
        except BaseException:
            self.close()
            raise
        super().__init__(view.info, view._layout, pack, view._checked)

    def _path_index(self) -> PathIndex | None:
        found = self.sections.find(PATHS) if self.sections is not None else None
        if found is None:
            return None
        return PathIndex(self.source, found.offset, found.length, max_entries=self._layout_entries)

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
            return View(info, IndexedLayout(self._paths, root, tree), self._pack, self._checked)
        from docteur.fs.layout import TrieLayout  # datrie: imported only where no index serves

        layout = TrieLayout(tree, self._tree_rows, self._layout_entries)
        return View(info, layout, self._pack, self._checked)

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
