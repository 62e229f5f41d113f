"""How the CLI shows things: file kinds, modes, human sizes and colour (NO_COLOR honoured)."""

from __future__ import annotations

import math
import os
from typing import IO

from docteur.git.objects import MODE_DIR, MODE_EXEC, MODE_GITLINK, MODE_LINK

_KINDS = {MODE_DIR: "directory", MODE_LINK: "symlink", MODE_GITLINK: "submodule", MODE_EXEC: "executable"}
_LETTERS = {MODE_DIR: "d", MODE_LINK: "l", MODE_GITLINK: "m"}
# GNU ls's default colours: directories bold blue, symlinks bold cyan, executables bold green.
_COLOURS = {MODE_DIR: "1;34", MODE_GITLINK: "1;34", MODE_LINK: "1;36", MODE_EXEC: "1;32"}
COLOR_CHOICES = ("auto", "always", "never")


def kind(mode: int) -> str:
    return _KINDS.get(mode, "file")


def mode_string(mode: int) -> str:
    perms = "rwxr-xr-x" if mode in (MODE_EXEC, MODE_DIR, MODE_GITLINK) else "rw-r--r--"
    return _LETTERS.get(mode, "-") + ("rwxrwxrwx" if mode == MODE_LINK else perms)


def human_size(n: int) -> str:
    """Like `ls -lh`: powers of 1024, rounded up, one decimal below 10 (1.1K, 12K, 3.0M)."""
    if n < 1024:
        return str(n)
    value = float(n)
    for unit in "KMGTPE":
        value /= 1024
        if value < 10 and math.ceil(value * 10) / 10 < 10:
            return f"{math.ceil(value * 10) / 10:.1f}{unit}"
        if math.ceil(value) < 1024:
            return f"{math.ceil(value)}{unit}"
    return f"{math.ceil(value)}E"


def use_colour(choice: str, stream: IO[str]) -> bool:
    """--color=always forces it; auto means a terminal and no NO_COLOR (https://no-color.org)."""
    if choice not in COLOR_CHOICES:
        raise ValueError(f"--color must be one of {', '.join(COLOR_CHOICES)}, not {choice!r}")
    if choice != "auto":
        return choice == "always"
    return not os.environ.get("NO_COLOR") and stream.isatty()


def coloured(name: str, mode: int) -> str:
    code = _COLOURS.get(mode)
    return f"\x1b[{code}m{name}\x1b[0m" if code else name
