"""An image behind any fsspec URL (s3://, gs://, az://, sftp://...): ranged reads through the filesystem
that fsspec has for it, with fsspec's block cache in between."""

from __future__ import annotations

import threading

from docteur.bytesource import ByteSource
from docteur.errors import RemoteError

BLOCK_SIZE = 1 << 20  # a remote request is dear: fetch a MiB at a time


class FsspecSource(ByteSource):
    def __init__(self, url: str, **options: object) -> None:
        try:
            import fsspec
        except ImportError:
            raise RemoteError(f"{url.split('://')[0]}:// images need fsspec (pip install fsspec)") from None
        self.name = url.split("?")[0]
        try:
            fs, path = fsspec.core.url_to_fs(url, **options)
            self.size = fs.size(path)
            self._file = fs.open(path, "rb", block_size=BLOCK_SIZE, cache_type="blockcache")
        except (ImportError, ValueError) as e:  # no filesystem for that protocol, or its package missing
            raise RemoteError(f"{self.name}: {e}") from None
        except FileNotFoundError:
            raise FileNotFoundError(2, "No such file or directory", self.name) from None
        except OSError as e:
            raise RemoteError(f"{self.name}: {e.strerror or e}") from None
        self._lock = threading.Lock()  # fsspec files have one position: reads take turns

    def read(self, offset: int, length: int) -> bytes:
        try:
            with self._lock:
                self._file.seek(offset)
                return self._file.read(length)
        except OSError as e:
            raise RemoteError(f"{self.name}: {e.strerror or e}") from None

    def close(self) -> None:
        self._file.close()
