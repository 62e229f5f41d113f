"""The `docteur` protocol for fsspec: an image read as a filesystem, by pandas, dask or anything on fsspec.

    fsspec.filesystem("docteur", fo="disk.img").cat("docs/a.md")
    fsspec.open("docteur://docs/a.md::file://disk.img").open().read()

The image may be a local file (memory-mapped), an https:// URL (read in ranged requests, see
docteur.bytesource.http) or any other fsspec URL (s3://..., read through that filesystem), given as
`fo=` or chained: `fsspec.open("docteur://docs/a.md::s3://bucket/disk.img")`. Symlinks are shown as
type "link" and read as their target, as Git stores them; times are the commit's.
"""

from __future__ import annotations

import errno
import os
from datetime import UTC, datetime
from typing import Any, NoReturn

from fsspec.spec import AbstractFileSystem

import docteur
from docteur.bytesource.fsspec_file import FsspecSource
from docteur.bytesource.location import is_url
from docteur.fs.image import BlobFile, Stat
from docteur.git.objects import MODE_DIR, MODE_GITLINK, MODE_LINK


def _location(fo: str | os.PathLike[str], protocol: str | None) -> str:
    """Where the image is, as docteur.open takes it: a path, or a URL (its protocol given apart when
    the URL was chained, as in docteur://PATH::https://host/disk.img)."""
    if not isinstance(fo, str | os.PathLike) or not os.fspath(fo):
        raise ValueError("docteur: fo= must name the image (a path or URL)")
    where = os.fspath(fo)
    if protocol in (None, "file") or "://" in where:
        return where.removeprefix("file://")
    return f"{protocol}://{where}"


class DocteurFileSystem(AbstractFileSystem):  # type: ignore[misc]
    protocol = "docteur"
    root_marker = ""
    # The image behind a path may be replaced (docteur-make writes atomically): never reuse an instance.
    cachable = False

    def __init__(
        self,
        fo: str | os.PathLike[str] = "",
        target_protocol: str | None = None,
        target_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.fo = _location(fo, target_protocol)
        if is_url(self.fo) and not self.fo.startswith(("http://", "https://")):
            # Any other fsspec filesystem (s3://, gs://...), with its storage options.
            self.image = docteur.open(FsspecSource(self.fo, **(target_options or {})))
        else:
            self.image = docteur.open(self.fo)
        self._mtime = datetime.fromtimestamp(self.image.info.commit_time, UTC)

    @classmethod
    def _strip_protocol(cls, path: str | list[str]) -> str | list[str]:
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]  # type: ignore[misc]
        return super()._strip_protocol(path).lstrip("/")  # type: ignore[no-any-return]

    def _details(self, path: str, st: Stat) -> dict[str, Any]:
        kind = {MODE_DIR: "directory", MODE_GITLINK: "directory", MODE_LINK: "link"}.get(st.mode, "file")
        info: dict[str, Any] = {
            "name": path,
            "size": st.size,
            "type": kind,
            "mode": st.mode,
            "oid": st.oid,
            "mtime": self._mtime.timestamp(),
            "islink": st.mode == MODE_LINK,
        }
        if st.mode == MODE_LINK:
            info["destination"] = self.image.readlink(path)
        return info

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        path = self._strip_protocol(path)  # type: ignore[assignment]
        return self._details(path, self.image.stat(path))

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        path = self._strip_protocol(path)  # type: ignore[assignment]
        st = self.image.stat(path)
        if st.mode in (MODE_DIR, MODE_GITLINK):
            entries = [
                self._details(f"{path}/{name}" if path else name, child)
                for name, child in self.image.scandir(path)
            ]
        else:
            entries = [self._details(path, st)]  # fsspec lists a file as itself
        return entries if detail else [e["name"] for e in entries]

    def cat_file(self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any) -> bytes:
        return self.image.read(self._strip_protocol(path))[start:end]  # type: ignore[arg-type]

    def _open(self, path: str, mode: str = "rb", **kwargs: Any) -> BlobFile:
        if mode != "rb":
            self._refuse()
        return self.image.open(self._strip_protocol(path))  # type: ignore[arg-type]

    def modified(self, path: str) -> datetime:
        self.info(path)
        return self._mtime

    created = modified

    def ukey(self, path: str) -> str:
        # The object id names the content, whatever image or path it comes from.
        return str(self.info(path)["oid"])

    def _refuse(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise OSError(errno.EROFS, "docteur images are read-only")

    mkdir = makedirs = rmdir = _rm = cp_file = touch = _refuse
