"""Objects of an image by hex id, for callers that browse beyond a commit's tree (9P's /trees/<id>): the
PACK's, and in a zstd image the framed blobs, each checked against its id."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from docteur.errors import CorruptImageError
from docteur.git.objects import BLOB, object_id
from docteur.pack.store import ObjectStore

Location = tuple[int, int, int]  # a framed blob's (frame, offset, size)


class ImageObjects(ObjectStore):
    """The PACK's objects, and the blobs `framed` gives (id -> location, or None), read by `read`."""

    def __init__(
        self,
        store: ObjectStore,
        framed: Callable[[bytes], Location | None],
        framed_ids: Callable[[], Iterable[bytes]],
        read: Callable[[Location], bytes],
    ) -> None:
        self._store = store
        self._framed = framed
        self._framed_ids = framed_ids
        self._read = read

    def get(self, oid: str) -> tuple[str, bytes]:
        try:
            return self._store.get(oid)
        except KeyError:
            pass
        try:
            raw = bytes.fromhex(oid)
        except ValueError:
            raise KeyError(oid) from None
        where = self._framed(raw)
        if where is None:
            raise KeyError(oid)
        data = self._read(where)
        if object_id(BLOB, data) != raw:
            raise CorruptImageError(f"blob {oid} does not hash to its id")
        return "blob", data

    def __contains__(self, oid: object) -> bool:
        if oid in self._store:
            return True
        try:
            return isinstance(oid, str) and self._framed(bytes.fromhex(oid)) is not None
        except ValueError:
            return False

    def __iter__(self) -> Iterator[str]:
        yield from self._store
        yield from (oid.hex() for oid in self._framed_ids())

    def __len__(self) -> int:
        return len(self._store) + sum(1 for _ in self._framed_ids())
