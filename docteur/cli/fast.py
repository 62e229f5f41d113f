"""Console scripts that start fast: docteur-cat, docteur-ls and docteur-verify skip typer (~50 ms of imports)
when their arguments are only plain positionals, and hand anything else (an option, --help, a wrong count,
shell completion) to the typer app, so usage, help and errors stay exactly the same. `docteur patch` and
`docteur delta` in their usual spelling (`docteur patch OLD UPDATE -o NEW`) skip it too: a device applying
an update pays for no more than the update. So do `docteur diff IMAGE A B` and `docteur log IMAGE [REF]`,
which scripts call in loops as they call git diff and git log.
"""

from __future__ import annotations

import os
import sys

from docteur.cli import commands

# docteur's subcommands with a fast path in their plain spelling: how many positionals they take.
HISTORY = {"diff": (3, 3), "log": (1, 2)}


def _plain(prog: str, low: int, high: int | None, args: list[str] | None = None) -> list[str] | None:
    """The arguments (the script's, by default), when they are `low`..`high` positionals and no
    completion is under way."""
    args = sys.argv[1:] if args is None else args
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


def _update_command(args: list[str]) -> tuple[str, list[str]] | None:
    """("patch" or "delta", [the two images or files, the output]) for `CMD A B -o OUT` (or `-o OUT A B`,
    `--output`, and `-q` for delta), when no completion is under way; None for anything else."""
    if not args or args[0] not in ("patch", "delta") or "_DOCTEUR_COMPLETE" in os.environ:
        return None
    command, rest = args[0], args[1:]
    if command == "delta" and "-q" in rest:
        rest = [a for a in rest if a != "-q"]
    for flag in ("-o", "--output"):
        if rest.count(flag) == 1 and rest.index(flag) in (0, 2) and len(rest) == 4:
            at = rest.index(flag)
            output = rest[at + 1]
            inputs = rest[:at] + rest[at + 2 :]
            if not any(a.startswith("-") for a in [*inputs, output]):
                return command, [*inputs, output]
    return None


def main() -> None:
    """`docteur`: the typer app, but for the usual spelling of patch, delta, diff and log."""
    args = sys.argv[1:]
    if args and args[0] in HISTORY:
        plain = _plain("docteur", *HISTORY[args[0]], args[1:])
        if plain is not None:
            return commands.diff(*plain) if args[0] == "diff" else commands.log(*plain)
    found = _update_command(args)
    if found is None:
        from docteur.cli.main import main as with_typer

        return with_typer()
    from docteur.cli import update

    command, (a, b, out) = found
    if command == "patch":
        update.patch(a, b, out)
    else:
        update.delta(a, b, out, quiet="-q" in sys.argv[2:])
    return None
