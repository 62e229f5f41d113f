"""Fetch one ref of a remote repository (git://, http(s)://, ssh://, scp-like) through dulwich."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

from dulwich.client import HTTPUnauthorized, get_transport_and_path
from dulwich.errors import GitProtocolError, HangupException, NotGitRepository
from dulwich.repo import Repo

from docteur.errors import SourceError
from docteur.source.repository import resolve_ref


def _describe(url: str, error: BaseException) -> str:
    """One line saying why a fetch failed, naming the URL without its password."""
    shown = _without_password(url)
    if isinstance(error, HTTPUnauthorized):
        return f"authentication failed for {shown}"
    if isinstance(error, socket.gaierror):
        return f"cannot resolve host of {shown}: {error.strerror}"
    if isinstance(error, ConnectionRefusedError):
        return f"cannot connect to {shown}: connection refused"
    if isinstance(error, TimeoutError | socket.timeout):
        return f"cannot connect to {shown}: timed out"
    if isinstance(error, OSError):
        return f"cannot reach {shown}: {error.strerror or error}"
    if isinstance(error, HangupException):
        text = " ".join(line.decode(errors="replace").strip() for line in error.stderr_lines if line.strip())
        return f"{shown} hung up" + (f": {text}" if text else " (repository missing or access denied?)")
    if isinstance(error, NotGitRepository):
        return f"{shown} is not a Git repository"
    message = str(error).strip().splitlines()
    reason = message[-1] if message else type(error).__name__
    if "401" in reason or "403" in reason or "Permission denied" in reason:
        return f"authentication failed for {shown}: {reason}"
    return f"fetch from {shown} failed: {reason}"


def _without_password(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if sep and "@" in rest.split("/", 1)[0]:
        creds, _, host = rest.partition("@")
        return f"{scheme}://{creds.split(':', 1)[0]}@{host}"
    return url


def fetch(url: str, ref: str | None, history: bool, target: Repo) -> bytes:
    """Fetch `ref` (HEAD when None) of `url` into the bare repository `target`; return its id.

    Without `history` the fetch is shallow (depth 1): only the commit and its tree come over the wire.
    """
    chosen: list[bytes] = []

    def determine_wants(refs: Mapping[bytes, bytes], depth: int | None = None) -> list[bytes]:
        chosen.append(resolve_ref(dict(refs), ref))
        return list(chosen)

    try:
        # Like git, honour GIT_SSH_COMMAND / GIT_SSH (dulwich alone runs plain `ssh`).
        ssh_command = os.environ.get("GIT_SSH_COMMAND") or os.environ.get("GIT_SSH")
        client, path = get_transport_and_path(url, ssh_command=ssh_command)
        client.fetch(path, target, determine_wants=determine_wants, depth=None if history else 1)
    except SourceError as e:
        raise SourceError(f"{e} at {_without_password(url)}") from None
    except (OSError, GitProtocolError, HTTPUnauthorized, NotGitRepository) as e:
        raise SourceError(_describe(url, e)) from None
    if not chosen:
        raise SourceError(f"{_without_password(url)} advertised no refs")
    return chosen[0]
