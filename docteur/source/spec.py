"""Classify a SOURCE argument: a remote URL, a local repository, or a directory."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from docteur.errors import SourceError

REMOTE_SCHEMES = {"http", "https", "git", "ssh", "git+ssh", "ssh+git"}
# scp-like syntax: [user@]host:path, where no '/' comes before the ':'
_SCP = re.compile(r"^(?:[^@/:\s]+@)?(?P<host>[^@/:\s]+):(?P<path>.+)$")


@dataclass(frozen=True)
class Spec:
    kind: str  # "remote" or "local"
    location: str  # a URL for a remote, an absolute path for a local source


def _remote(url: str) -> Spec:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError as e:
        raise SourceError(f"malformed URL {url!r}: {e}") from None
    if not parts.hostname:
        raise SourceError(f"malformed URL {url!r}: no host")
    if not parts.path.strip("/"):
        raise SourceError(f"malformed URL {url!r}: no repository path")
    return Spec("remote", url)


def parse(source: str) -> Spec:
    if not source:
        raise SourceError("empty source")
    scheme, sep, rest = source.partition("://")
    if sep:
        scheme = scheme.lower()
        if scheme == "file":
            return Spec("local", os.path.normpath("/" + unquote(rest).lstrip("/")))
        if scheme == "relativize":
            return Spec("local", os.path.normpath(Path.cwd() / unquote(rest).lstrip("/")))
        if scheme in REMOTE_SCHEMES:
            return _remote(source)
        raise SourceError(f"unsupported source scheme {scheme!r} in {source!r}")
    if os.path.lexists(source):
        return Spec("local", os.path.abspath(source))
    match = _SCP.match(source)
    if match and match["host"] not in (".", ".."):
        return Spec("remote", source)
    raise SourceError(f"source not found: {source}")
