"""A bounded on-disk cache of the blocks HttpSource fetched, shared by every process of the user.

Layout under the root ($XDG_CACHE_HOME/docteur, else ~/.cache/docteur):

    CACHEDIR.TAG                 marks the folder as a cache for backup tools
    pins/<hash of URL>.json      the last pin seen for a URL: size, ETag, Last-Modified, when checked
    blocks/<hash of image>/<n>   block n of one image: a header (magic, n, length, CRC-32), then the bytes

An image's blocks are keyed by its URL without credentials or query, its validators, its size and the block
size: a replaced image gets other keys, so its old blocks are never served for it. A block file is written
under a temporary name and renamed, so readers in other processes see a whole file or none; one that is
torn or corrupt anyway (a crash, a full disk) fails its check and is deleted, never served.

The cap is kept by evicting blocks, least recently used first (a block's mtime is refreshed when it is
served); pins, a few hundred bytes each, go when not checked for PIN_DAYS days, or when no block is left:
each process scans the cache when it starts writing and then after every eighth of the cap it writes, so
the cache exceeds its cap by at most an eighth per writing process in between. Every failure to write is
ignored: the cache only ever saves requests.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import struct
import tempfile
import threading
import time
import zlib
from pathlib import Path

log = logging.getLogger("docteur.http")

DEFAULT_CACHE_BYTES = 1 << 30
_BLOCK = struct.Struct("<4sQII")  # magic, block number, length, CRC-32 of the bytes
_MAGIC = b"DBK1"
_TEMP = ".tmp-"
_STALE_TEMP = 3600.0  # seconds after which a temporary file is a crashed writer's
PIN_DAYS = 30
_TAG = "Signature: 8a477f597d28d172789f06886806bc55\n# docteur's cache of remote image blocks\n"


def default_dir() -> Path:
    """$XDG_CACHE_HOME/docteur, else ~/.cache/docteur (a relative XDG_CACHE_HOME is ignored, as XDG says)."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "docteur"


def _digest(*parts: object) -> str:
    return hashlib.sha256("\n".join(map(str, parts)).encode("utf-8", "surrogateescape")).hexdigest()[:32]


class DiskCache:
    """Blocks and pins under `root`, at most about `cap_bytes` of them."""

    def __init__(self, root: str | os.PathLike[str], cap_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        if cap_bytes <= 0:
            raise ValueError("a disk cache needs a positive cap (no cache at all: pass cache_dir=None)")
        self.root = Path(root)
        self.cap = cap_bytes
        self._scan_every = max(cap_bytes // 8, 1)
        self._unscanned = self._scan_every  # the first write scans
        self._lock = threading.Lock()
        self._made = False

    # -- pins --------------------------------------------------------------------------------------

    def _pin_path(self, url: str) -> Path:
        return self.root / "pins" / f"{_digest(url)}.json"

    def load_pin(self, url: str) -> dict[str, object] | None:
        """The record `store_pin` last saved for `url`, or None (absent or unreadable)."""
        try:
            record = json.loads(self._pin_path(url).read_text())
        except (OSError, ValueError):
            return None
        return record if isinstance(record, dict) and record.get("url") == url else None

    def store_pin(self, url: str, record: dict[str, object]) -> None:
        self._write(self._pin_path(url), json.dumps({**record, "url": url}).encode())

    # -- blocks ------------------------------------------------------------------------------------

    def image_key(self, url: str, etag: str, last_modified: str, size: int, block_size: int) -> str:
        return _digest(url, etag, last_modified, size, block_size)

    def _block_path(self, key: str, index: int) -> Path:
        return self.root / "blocks" / key / f"{index:x}"

    def get(self, key: str, index: int) -> bytes | None:
        """Block `index` of image `key`, or None when it is absent or fails its check (then it is deleted)."""
        path = self._block_path(key, index)
        try:
            with open(path, "rb") as f:
                raw = f.read()
        except OSError:
            return None
        if len(raw) >= _BLOCK.size:
            magic, number, length, crc = _BLOCK.unpack_from(raw)
            data = raw[_BLOCK.size :]
            if magic == _MAGIC and number == index and length == len(data) and zlib.crc32(data) == crc:
                with contextlib.suppress(OSError):
                    os.utime(path)  # recently used
                return data
        log.warning("%s: damaged cache block, discarded", path)
        with contextlib.suppress(OSError):
            path.unlink()
        return None

    def put(self, key: str, index: int, data: bytes) -> None:
        header = _BLOCK.pack(_MAGIC, index, len(data), zlib.crc32(data))
        self._write(self._block_path(key, index), header + data)

    # -- writing and eviction ----------------------------------------------------------------------

    def _write(self, path: Path, data: bytes) -> None:
        """Write `data` to `path` atomically; failures are logged and ignored."""
        try:
            self._prepare()
            for attempt in range(2):
                try:
                    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=_TEMP)  # mode 0600
                    break
                except FileNotFoundError:  # the folder is new, or an eviction just removed it
                    if attempt:
                        raise
                    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                os.replace(temp, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temp)
                raise
        except OSError as e:
            log.debug("%s: not cached: %s", path, e)
            return
        with self._lock:
            self._unscanned += len(data)
            due = self._unscanned >= self._scan_every
            if due:
                self._unscanned = 0
        if due:
            self.evict()

    def _prepare(self) -> None:
        if self._made:
            return
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        tag = self.root / "CACHEDIR.TAG"
        if not tag.exists():
            with contextlib.suppress(OSError):
                tag.write_text(_TAG)
        self._made = True

    def usage(self) -> int:
        """Bytes the cache's files hold now."""
        return sum(size for _, size, _ in self._entries())

    def _entries(self) -> list[tuple[float, int, Path]]:
        """(mtime, size, path) of every block and pin; crashed writers' temporary files are removed."""
        entries = []
        now = time.time()
        for folder in (self.root / "pins", *_subfolders(self.root / "blocks")):
            try:
                listing = list(os.scandir(folder))
            except OSError:
                continue
            for entry in listing:
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if entry.name.startswith(_TEMP):
                    if now - st.st_mtime > _STALE_TEMP:
                        with contextlib.suppress(OSError):
                            os.unlink(entry.path)
                    continue
                entries.append((st.st_mtime, st.st_size, Path(entry.path)))
        return entries

    def evict(self) -> None:
        """Delete the least recently used blocks until the cache holds at most 7/8 of its cap."""
        entries = self._entries()
        pins = self.root / "pins"
        old = time.time() - PIN_DAYS * 86400
        for mtime, _, path in entries:
            if path.parent == pins and mtime < old:
                with contextlib.suppress(OSError):
                    path.unlink()
        entries = [e for e in entries if e[2].parent != pins or e[0] >= old]
        total = sum(size for _, size, _ in entries)
        if total <= self.cap:
            return
        target = self.cap - self.cap // 8
        entries.sort(key=lambda e: (e[2].parent == pins, e[0]))  # blocks first, oldest first
        emptied = set()
        for _, size, path in entries:
            if total <= target:
                break
            with contextlib.suppress(OSError):
                path.unlink()
                emptied.add(path.parent)
            total -= size
        for folder in emptied - {pins}:
            with contextlib.suppress(OSError):
                folder.rmdir()  # only when empty
        log.debug("%s: evicted down to %d bytes", self.root, total)


def _subfolders(path: Path) -> list[str]:
    try:
        return [e.path for e in os.scandir(path) if e.is_dir(follow_symlinks=False)]
    except OSError:
        return []
