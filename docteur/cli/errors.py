"""Every failure a user can cause ends as one line on stderr and a non-zero exit, never a traceback.

No typer here: the fast path of the shortcut scripts (docteur.cli.fast) shares these without importing it.
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

TYPE_CHECKING = False  # not typing's: importing typing costs the fast paths their start-up
if TYPE_CHECKING:
    from typing import NoReturn

EXIT_FAILURE = 1  # the command ran and failed (bad image, missing path, bad source, verification problems)
EXIT_USAGE = 2  # the command line itself is wrong
EXIT_INTERRUPTED = 130

EXIT_CODES = (
    "Exit status: 0 success; 1 the command failed (unreadable or corrupt image, missing path, bad source, "
    "verification problems); 2 bad usage (unknown option, missing or invalid argument); 130 interrupted."
)


def describe_os_error(e: OSError) -> str:
    what = e.strerror or str(e)
    if e.errno == errno.ENOSPC:
        what = "no space left on device"
    return f"{e.filename}: {what}" if e.filename else what


def fail(prog: str, message: str, code: int = EXIT_FAILURE) -> NoReturn:
    sys.stderr.write(f"{prog}: error: {message}\n")
    raise SystemExit(code)


def _quiet_broken_pipe() -> NoReturn:
    # The reader went away (`docteur-cat ... | head`): stop quietly, and keep the interpreter's final flush
    # of stdout from raising again.
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    raise SystemExit(EXIT_FAILURE)


@contextmanager
def one_line_errors(prog: str, image: str | None = None) -> Iterator[None]:
    """Turn the errors a user can cause into one line; a damaged `image` is named in its message."""
    from docteur.errors import CorruptImageError, DocteurError

    try:
        yield
    except CorruptImageError as e:
        fail(prog, f"{image}: {e}" if image and image not in str(e) else str(e))
    except DocteurError as e:
        fail(prog, str(e))
    except BrokenPipeError:
        _quiet_broken_pipe()
    except OSError as e:
        fail(prog, describe_os_error(e))
    except ValueError as e:
        fail(prog, str(e))
    except KeyboardInterrupt:
        sys.stderr.write(f"{prog}: interrupted\n")
        raise SystemExit(EXIT_INTERRUPTED) from None
