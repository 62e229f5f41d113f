"""Objects of an image by hex id, for callers that browse beyond the embedded tree (e.g. 9P /trees)."""

from __future__ import annotations

from collections.abc import Iterator

from docteur.git.objects import TYPE_NAMES
from docteur.pack.reader import PackReader


class ObjectStore:
    def __init__(self, pack: PackReader) -> None:
        self._pack = pack

    def get(self, oid: str) -> tuple[str, bytes]:
        """(kind, content) of an object; KeyError when the image does not hold it."""
        try:
            raw = bytes.fromhex(oid)
        except ValueError:
            raise KeyError(oid) from None
        kind, data = self._pack.get(raw)
        return TYPE_NAMES[kind].decode(), data

    def __contains__(self, oid: object) -> bool:
        if not isinstance(oid, str):
            return False
        try:
            return bytes.fromhex(oid) in self._pack.index
        except ValueError:
            return False

    def __iter__(self) -> Iterator[str]:
        return (oid.hex() for oid in self._pack.index)

    def __len__(self) -> int:
        return self._pack.index.count
