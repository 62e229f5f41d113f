"""A one-line progress report on stderr, shown only when stderr is a terminal."""

from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self._label = ""
        self._total: int | None = None
        self._count = 0
        self._shown = 0.0

    def start(self, label: str, total: int | None = None) -> None:
        self.finish()
        self._label, self._total, self._count, self._shown = label, total, 0, 0.0
        self._show()

    def advance(self, n: int = 1) -> None:
        self._count += n
        if self.enabled and time.monotonic() - self._shown > 0.1:
            self._show()

    def _show(self) -> None:
        if not self.enabled:
            return
        self._shown = time.monotonic()
        if self._total:
            pct = 100 * self._count // self._total
            text = f"{self._label}: {pct:3d}% ({self._count}/{self._total})"
        else:
            text = f"{self._label}: {self._count}"
        sys.stderr.write(f"\r\x1b[K{text}")
        sys.stderr.flush()

    def finish(self) -> None:
        if self.enabled and self._label:
            self._show()
            sys.stderr.write(", done.\n")
            sys.stderr.flush()
        self._label = ""
