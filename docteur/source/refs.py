"""Which refs of a repository an image embeds: `-b` (repeatable), `--all-branches`, `--tags`, or HEAD."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from docteur.errors import SourceError
from docteur.git.refs import HEADS, TAGS, ref_candidates

_HEX_ID = re.compile(rb"^[0-9a-f]{40}$")


@dataclass(frozen=True)
class RefSelection:
    names: tuple[str, ...] = ()  # -b, in the order given
    all_branches: bool = False
    tags: bool = False

    def __str__(self) -> str:
        """What was asked, as on the command line."""
        options = [f"-b {name}" for name in self.names]
        return " ".join(options + ["--all-branches"] * self.all_branches + ["--tags"] * self.tags)

    @property
    def asked(self) -> bool:
        """Whether any ref was asked for (else: HEAD)."""
        return bool(self.names or self.all_branches or self.tags)

    @property
    def named(self) -> bool:
        """Whether refs were asked for by name (the image then records them), rather than HEAD alone or
        one commit given by its id."""
        if self.all_branches or self.tags or len(self.names) > 1:
            return True
        return bool(self.names) and not _HEX_ID.match(self.names[0].encode())


def resolve(refs: Mapping[bytes, bytes], ref: str) -> tuple[bytes, bytes]:
    """(full name, id) of what `ref` names in `refs`; SourceError when it names nothing. A commit id
    names itself."""
    raw = ref.encode()
    if _HEX_ID.match(raw):
        return raw, raw
    for name in ref_candidates(ref):
        if name in refs:
            return name, refs[name]
    if ref == "HEAD":
        raise SourceError("the repository has no HEAD commit (empty repository?)")
    raise SourceError(f"unknown ref {ref!r}")


def select(refs: Mapping[bytes, bytes], selection: RefSelection) -> list[tuple[bytes, bytes]]:
    """(full name, id) of every ref the selection names, each once, in order: the -b refs as given, then
    the branches (with --all-branches alone, the one HEAD is at first), then the tags, by name. Nothing
    named: HEAD alone."""
    if not selection.asked:
        return [(b"HEAD", resolve(refs, "HEAD")[1])]
    chosen = [resolve(refs, name) for name in selection.names]
    if selection.all_branches:
        branches = sorted(n for n in refs if n.startswith(HEADS))
        at_head = [n for n in branches if refs[n] == refs.get(b"HEAD")]
        if at_head and not selection.names:
            branches.insert(0, branches.pop(branches.index(at_head[0])))
        chosen += [(n, refs[n]) for n in branches]
    if selection.tags:
        chosen += [(n, refs[n]) for n in sorted(refs) if n.startswith(TAGS) and not n.endswith(b"^{}")]
    if not chosen:
        raise SourceError("the repository has no " + ("branches" if selection.all_branches else "tags"))
    unique: dict[bytes, bytes] = {}
    for name, oid in chosen:
        unique.setdefault(name, oid)
    return list(unique.items())
