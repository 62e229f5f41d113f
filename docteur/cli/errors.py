"""Every failure a user can cause ends as one line on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

import errno
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import typer

EXIT_FAILURE = 1  # the command ran and failed (bad image, bad source, verification problems)
EXIT_INTERRUPTED = 130


def describe_os_error(e: OSError) -> str:
    what = e.strerror or str(e)
    if e.errno == errno.ENOSPC:
        what = "no space left on device"
    return f"{e.filename}: {what}" if e.filename else what


@contextmanager
def one_line_errors(prog: str) -> Iterator[None]:
    from docteur.errors import DocteurError

    try:
        yield
    except DocteurError as e:
        fail(prog, str(e))
    except OSError as e:
        fail(prog, describe_os_error(e))
    except ValueError as e:
        fail(prog, str(e))
    except KeyboardInterrupt:
        sys.stderr.write(f"{prog}: interrupted\n")
        raise typer.Exit(EXIT_INTERRUPTED) from None


def fail(prog: str, message: str) -> None:
    sys.stderr.write(f"{prog}: error: {message}\n")
    raise typer.Exit(EXIT_FAILURE)
