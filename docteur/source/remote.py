"""Fetch one ref of a remote repository (git://, http(s)://, ssh://, scp-like) through dulwich."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

from dulwich.client import HTTPUnauthorized, get_transport_and_path
from dulwich.errors import GitProtocolError, HangupException, NotGitRepository
from dulwich.repo import Repo

from docteur.errors import SourceError
from docteur.source.refs import RefSelection, select

_KNOWN_REASONS = (
    ("Connection refused", "cannot connect to {url}: connection refused"),
    ("Name or service not known", "cannot resolve the host of {url}"),
    ("Temporary failure in name resolution", "cannot resolve the host of {url}"),
    ("No route to host", "cannot reach {url}: no route to host"),
    ("timed out", "cannot connect to {url}: timed out"),
    ("Permission denied", "authentication failed for {url}: permission denied"),
    ("Authentication failed", "authentication failed for {url}"),
)


def _describe(url: str, error: BaseException) -> str:
    """One line saying why a fetch failed, naming the URL without its password."""
    shown = _without_password(url)
    if isinstance(error, HTTPUnauthorized):
        return f"authentication failed for {shown}"
    if isinstance(error, HangupException):
        text = " ".join(line.decode(errors="replace").strip() for line in error.stderr_lines if line.strip())
    else:
        text = " ".join(str(error).split())
    for needle, message in _KNOWN_REASONS:
        if needle.lower() in text.lower():
            return message.format(url=shown)
    if isinstance(error, socket.gaierror):
        return f"cannot resolve the host of {shown}"
    if isinstance(error, NotGitRepository):
        return f"no Git repository at {shown}"
    if isinstance(error, OSError):
        return f"cannot reach {shown}: {error.strerror or text}"
    if isinstance(error, HangupException):
        return f"{shown} hung up" + (f": {text}" if text else " (repository missing or access denied?)")
    return f"fetch from {shown} failed: {text or type(error).__name__}"


def _without_password(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if sep and "@" in rest.split("/", 1)[0]:
        creds, _, host = rest.partition("@")
        return f"{scheme}://{creds.split(':', 1)[0]}@{host}"
    return url


def fetch(url: str, selection: RefSelection, history: bool, target: Repo) -> list[tuple[bytes, bytes]]:
    """Fetch the refs `selection` names (HEAD when none) of `url` into the bare repository `target`;
    return their (full name, id).

    Without `history` the fetch is shallow (depth 1): only the commits and their trees come over the wire.
    """
    chosen: list[tuple[bytes, bytes]] = []

    def determine_wants(refs: Mapping[bytes, bytes], depth: int | None = None) -> list[bytes]:
        chosen.extend(select(dict(refs), selection))
        return list(dict.fromkeys(oid for _, oid in chosen))

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
    return chosen
