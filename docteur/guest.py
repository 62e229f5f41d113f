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


def serve(device: str) -> int:
    # docteur-serve itself, on stdin/stdout (a virtconsole): it needs nothing beyond the stdlib.
    from docteur.ninep.cli import main as docteur_serve

    return docteur_serve([device, "--listen", "stdio"])


def describe(e: OSError | docteur.DocteurError, device: str) -> str:
    """One line for the user: which file or image, and what is wrong with it."""
    if isinstance(e, OSError):
        return f"{e.filename or device}: {e.strerror or e}"
    return f"{device}: {e}"


def main(argv: list[str]) -> int:
    match argv:
        case ["cat", device, path]:
            try:
                cat(device, path)
            except (OSError, docteur.DocteurError) as e:
                print(f"docteur: {describe(e, device)}", file=sys.stderr)
                return 1
            return 0
        case ["serve", device]:
            return serve(device)
    print("usage: python3 -m docteur.guest cat DEVICE PATH | serve DEVICE", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
