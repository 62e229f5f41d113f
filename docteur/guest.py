"""The entry point inside the QEMU guest (unikernel/): stdlib and the docteur reader only.

    python3 -m docteur.guest cat DEVICE PATH   # PATH's exact bytes on stdout
    python3 -m docteur.guest serve DEVICE      # the image over 9P on stdin/stdout

Errors are one line on stderr and exit status 1; usage errors exit 2.
"""

from __future__ import annotations

import os
import sys

import docteur

CHUNK = 1 << 20


def cat(device: str, path: str) -> None:
    with docteur.open(device) as img, img.open(path) as f:
        while chunk := f.read(CHUNK):
            view = memoryview(chunk)
            while view:
                view = view[os.write(1, view) :]


def serve(device: str) -> None:
    from docteur.ninep import serve_stdio

    serve_stdio(device)


def describe(e: BaseException, path: str) -> str:
    """One line for the user: which path or image, and what is wrong with it."""
    if isinstance(e, FileNotFoundError):
        return f"{path}: no such file in the image"
    if isinstance(e, IsADirectoryError):
        return f"{path}: is a directory"
    if isinstance(e, NotADirectoryError):
        return f"{path}: a parent of it is not a directory"
    if isinstance(e, OSError):
        return f"{e.filename or path}: {e.strerror or e}"
    return str(e)


def main(argv: list[str]) -> int:
    match argv:
        case ["cat", device, path]:
            run, target = (lambda: cat(device, path)), path
        case ["serve", device]:
            run, target = (lambda: serve(device)), device
        case _:
            print("usage: python3 -m docteur.guest cat DEVICE PATH | serve DEVICE", file=sys.stderr)
            return 2
    try:
        run()
    except (OSError, docteur.DocteurError) as e:
        print(f"docteur: {describe(e, target)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
