"""Bytes already in memory as a source: an IDX being written, a PACK being checked, tests."""

from __future__ import annotations

from docteur.bytesource import ByteSource


class InMemory(ByteSource):
    def __init__(self, data: bytes | bytearray | memoryview, name: str = "<memory>") -> None:
        self._view = memoryview(data)
        self.size = len(self._view)
        self.name = name

    def read(self, offset: int, length: int) -> memoryview:
        return self._view[offset : offset + length]
