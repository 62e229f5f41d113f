"""The Makefile's run, mount and serve targets (boot noise goes to unikernel/build/boot.log).

python -m unikernel run IMAGE FILE       FILE's exact bytes on stdout, read by docteur in the guest
python -m unikernel disk IMAGE CMD       the guest mounts IMAGE (its own disk) at /mnt, runs CMD
python -m unikernel mount [--version V] IMAGE CMD
                                         docteur-serve IMAGE on the host; the guest mounts it, runs CMD
python -m unikernel serve IMAGE SOCKET   the guest serves IMAGE over 9P on the unix socket SOCKET
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
from pathlib import Path
from typing import NoReturn

from unikernel import guest, host
from unikernel.paths import BUILD

LOG = BUILD / "boot.log"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message}\n")


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m unikernel", description="Boot the docteur guest.")
    sub = p.add_subparsers(dest="mode", required=True)
    run = sub.add_parser("run", help="print FILE of IMAGE, read inside the guest")
    run.add_argument("image")
    run.add_argument("file")
    disk = sub.add_parser("disk", help="the guest mounts IMAGE, its own disk, at /mnt and runs CMD")
    disk.add_argument("image")
    disk.add_argument("cmd")
    mount = sub.add_parser("mount", help="mount IMAGE over 9P in the guest and run CMD")
    mount.add_argument("--version", default="9p2000.L", help="9P dialect (9p2000.L, 9p2000.u, 9p2000)")
    mount.add_argument("image")
    mount.add_argument("cmd")
    serve = sub.add_parser("serve", help="the guest serves IMAGE over 9P on the unix socket SOCKET")
    serve.add_argument("image")
    serve.add_argument("socket")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if not Path(args.image).exists():
            raise guest.GuestError(f"{args.image}: no such image")
        if args.mode == "run":
            result = guest.run_block(args.image, args.file, log=LOG)
        elif args.mode == "disk":
            result = guest.run_disk(args.image, args.cmd, log=LOG)
        elif args.mode == "mount":
            with host.docteur_serve(args.image) as sock:
                result = guest.run_mounted(sock, args.cmd, args.version, log=LOG)
        else:
            # SIGTERM unwinds like Ctrl-C, so the guest is stopped too.
            signal.signal(signal.SIGTERM, signal.default_int_handler)
            with guest.serving(args.image, args.socket, log=LOG) as qemu:
                print(f"unikernel: the guest serves {args.image} on {args.socket}", file=sys.stderr)
                with contextlib.suppress(KeyboardInterrupt):
                    qemu.wait()
            return 0
    except guest.GuestError as e:
        print(f"unikernel: {str(e).splitlines()[0]}", file=sys.stderr)
        return 1
    sys.stdout.buffer.write(result.stdout)
    sys.stdout.buffer.flush()
    sys.stderr.buffer.write(result.stderr)
    return result.rc


if __name__ == "__main__":
    sys.exit(main())
