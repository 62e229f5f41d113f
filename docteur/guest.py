"""The entry point inside the QEMU guest (unikernel/): stdlib and the docteur reader only.

    python3 -m docteur.guest cat DEVICE PATH   # PATH's exact bytes on stdout
    python3 -m docteur.guest serve DEVICE      # the image over 9P on stdin/stdout
    python3 -m docteur.guest mount DEVICE DIR  # the image mounted read-only at DIR by this kernel's 9P

Errors are one line on stderr and exit status 1; usage errors exit 2.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

import docteur

if TYPE_CHECKING:
    import socket

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


def mount(device: str, target: str) -> int:
    """Mount DEVICE's image at TARGET with the kernel's own 9P client, served by a child process.

    The image is opened here first, so a bad one is a one-line error before anything is mounted. The
    kernel and the server talk over a socketpair (trans=fd); the server lives until the kernel lets go of
    its end (unmount or poweroff). Returns mount's exit status.
    """
    import socket  # here, not above: cat mode boots faster without them
    import subprocess

    img = docteur.open(device)
    server, kernel = socket.socketpair()
    if os.fork() == 0:
        kernel.close()
        _serve_child(img, server)
    server.close()
    img.close()
    fd = kernel.fileno()
    # msize: one request per 512 KiB of a large file keeps the socketpair's round trips few.
    options = f"ro,trans=fd,rfdno={fd},wfdno={fd},version=9p2000.L,msize=524288,cache=loose"
    proc = subprocess.run(
        ["mount", "-t", "9p", "-o", options, "docteur", target], pass_fds=(fd,), stderr=subprocess.PIPE
    )
    if proc.returncode != 0:
        print(f"docteur: {target}: {proc.stderr.decode(errors='replace').strip()}", file=sys.stderr)
    return proc.returncode


def _serve_child(img: docteur.Image, sock: socket.socket) -> None:
    # The child lets go of the caller's stdin, stdout and stderr (virtio ports open only once at a time, and
    # the caller's shell goes on once mount returns): what the server logs goes to the console instead.
    from docteur.ninep.serial import serve_serially
    from docteur.ninep.tree import TreeFS

    os.setsid()
    for fd in (0, 1):
        os.dup2(os.open(os.devnull, os.O_RDWR), fd)
    console = os.open("/dev/console" if os.path.exists("/dev/console") else os.devnull, os.O_WRONLY)
    os.dup2(console, 2)
    os.close(console)
    try:
        serve_serially(TreeFS(img), sock)
    finally:
        os._exit(0)


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
        case ["mount", device, target]:
            try:
                return mount(device, target)
            except (OSError, docteur.DocteurError) as e:
                print(f"docteur: {describe(e, device)}", file=sys.stderr)
                return 1
    usage = "usage: python3 -m docteur.guest cat DEVICE PATH | serve DEVICE | mount DEVICE DIR"
    print(usage, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
