"""Ref names as git resolves a short one: the candidates it tries, most specific first."""

from __future__ import annotations

HEADS, TAGS = b"refs/heads/", b"refs/tags/"


def ref_candidates(ref: str) -> list[bytes]:
    """The names `ref` may mean: itself when it is a full name or HEAD, else a branch, a tag, a remote."""
    raw = ref.encode("utf-8", "surrogateescape")
    if raw.startswith(b"refs/") or raw == b"HEAD":
        return [raw]
    return [raw, HEADS + raw, TAGS + raw, b"refs/remotes/" + raw]
