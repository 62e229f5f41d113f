"""Console scripts that start fast: docteur-cat, docteur-ls and docteur-verify skip typer (~50 ms of imports)
when their arguments are only plain positionals, and hand anything else (an option, --help, a wrong count,
shell completion) to the typer app, so usage, help and errors stay exactly the same.
"""

from __future__ import annotations

import os
import sys

from docteur.cli import commands


def _plain(prog: str, low: int, high: int | None) -> list[str] | None:
    """The arguments, when they are `low`..`high` positionals and no completion is under way."""
    args = sys.argv[1:]
    if f"_{prog.upper().replace('-', '_')}_COMPLETE" in os.environ:
        return None
    if any(a.startswith("-") for a in args) or len(args) < low or (high is not None and len(args) > high):
        return None
    return args


def cat_main() -> None:
    args = _plain("docteur-cat", 2, None)
    if args is None:
        from docteur.cli.main import cat_main as with_typer

        return with_typer()
    commands.cat(args[0], args[1:])
    return None


def ls_main() -> None:
    args = _plain("docteur-ls", 1, 2)
    if args is None:
        from docteur.cli.main import ls_main as with_typer

        return with_typer()
    commands.ls(*args)
    return None


def verify_main() -> None:
    args = _plain("docteur-verify", 1, 1)
    if args is None:
        from docteur.cli.main import verify_main as with_typer

        return with_typer()
    commands.verify(args[0])
    return None
