"""From where an image is named to its byte source: a path (a file or a block device), an http(s) URL,
or any other URL fsspec knows (s3://, gs://...), when fsspec and that filesystem are installed."""

from __future__ import annotations

import os
import re

from docteur.bytesource import ByteSource
from docteur.bytesource.mapped import DEFAULT_MAPPED_BYTES, MappedFile

_URL = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def is_url(location: str | os.PathLike[str]) -> bool:
    return (
        isinstance(location, str) and _URL.match(location) is not None and not location.startswith("file://")
    )


def cache_options(cache_dir: str | None, no_cache: bool) -> dict[str, object]:
    """The tools' --cache-dir and --no-cache as open_source's keywords (nothing given: the defaults)."""
    if no_cache:
        return {"cache_dir": None}
    return {} if cache_dir is None else {"cache_dir": cache_dir}


def open_source(
    location: str | os.PathLike[str], *, mapped_bytes: int = DEFAULT_MAPPED_BYTES, **remote: Any
) -> ByteSource:
    """The byte source of `location`. `remote` holds the options of a remote one: for http(s), those of
    HttpSource (cache_dir=None turns the disk cache off; disk_cache_bytes caps it), and for other URLs
    fsspec's storage options."""
    if not is_url(location):
        path = os.fspath(location)
        return MappedFile(path.removeprefix("file://"), mapped_bytes=mapped_bytes)
    scheme = _URL.match(str(location)).group(1).lower()  # type: ignore[union-attr]
    if scheme in ("http", "https"):
        from docteur.bytesource.http import HttpSource

        if "disk_cache_bytes" in remote:
            remote["cache_bytes"] = remote.pop("disk_cache_bytes")
        return HttpSource(str(location), **remote)
    from docteur.bytesource.fsspec_file import FsspecSource

    return FsspecSource(str(location), **{k: v for k, v in remote.items() if k not in _HTTP_ONLY})


# Options of the HTTP source that mean nothing to another fsspec filesystem.
_HTTP_ONLY = frozenset({"cache_dir", "disk_cache_bytes", "max_age"})
