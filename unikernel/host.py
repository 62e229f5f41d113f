"""The host side of 9P mode: docteur-serve on a private unix socket, for the guest to mount."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from unikernel.guest import wait_for_socket


@contextlib.contextmanager
def docteur_serve(image: str | os.PathLike[str], *args: str) -> Iterator[Path]:
    """Run docteur-serve IMAGE (plus ARGS) on a fresh unix socket; yield the socket's path."""
    with tempfile.TemporaryDirectory(prefix="docteur-serve-") as tmp:
        sock, log = Path(tmp) / "9p.sock", Path(tmp) / "serve.log"
        argv = [sys.executable, "-m", "docteur.ninep", os.fspath(image), "--listen", f"unix:{sock}", *args]
        with log.open("wb") as err:
            server = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        try:
            wait_for_socket(sock, server, log, "docteur-serve")
            yield sock
        finally:
            server.terminate()
            server.wait()
