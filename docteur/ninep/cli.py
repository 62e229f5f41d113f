"""docteur-serve: serve an image's tree read-only over 9P (stdlib and docteur only: it runs in guests)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from typing import NoReturn

import docteur
from docteur.bytesource.location import cache_options
from docteur.ninep.fs import ReadOnlyFS
from docteur.ninep.limits import MIN_MSIZE, Limits
from docteur.ninep.listen import DEFAULT_LISTEN, Listen, parse_listen, serve
from docteur.ninep.server import Server

MAX_MSIZE = 1 << 20
LAYOUTS = ("tree", "datakit")


def run(
    image: str,
    where: Listen,
    *,
    layout: str = "tree",
    uid: int = 0,
    gid: int = 0,
    limits: Limits | None = None,
    remote: dict[str, object] | None = None,
) -> None:
    """Serve ``image`` until stopped; the image's errors (DocteurError, OSError) reach the caller.
    ``remote`` holds a remote image's options (docteur.open's keywords)."""
    with docteur.open(image, **(remote or {})) as img:
        fs: ReadOnlyFS
        if layout == "datakit":
            from docteur.ninep.datakit import DatakitFS

            fs = DatakitFS(img)
        else:
            from docteur.ninep.tree import TreeFS

            fs = TreeFS(img)
        asyncio.run(serve(Server(fs, uid=uid, gid=gid, limits=limits), where))


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see --help)\n")


def _bounded(low: int, high: int) -> type[int]:
    def parse(text: str) -> int:
        value = int(text)
        if not low <= value <= high:
            raise ValueError
        return value

    parse.__name__ = f"{low}..{high}"
    return parse  # type: ignore[return-value]


def _seconds(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1e6:
        raise ValueError
    return value


_seconds.__name__ = "seconds"


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="docteur-serve", description="Serve a docteur image read-only over 9P.")
    p.add_argument("image", help="the image: a file, a block device or an https:// URL")
    p.add_argument("--cache-dir", metavar="DIR", help="where a remote image's blocks are kept")
    p.add_argument("--no-cache", action="store_true", help="keep no disk cache of a remote image's blocks")
    p.add_argument(
        "--listen",
        default=DEFAULT_LISTEN,
        help=f"tcp:HOST:PORT, unix:PATH or stdio (one session on stdin/stdout, tty or not); {DEFAULT_LISTEN}",
    )
    p.add_argument(
        "--layout",
        choices=LAYOUTS,
        default="tree",
        help="tree (default): the commit's tree; datakit: DataKit's /branch /snapshots /trees /remotes",
    )
    p.add_argument("--uid", type=_bounded(0, 0xFFFFFFFE), default=0, help="owner of every file (default 0)")
    p.add_argument("--gid", type=_bounded(0, 0xFFFFFFFE), default=0, help="group of every file (default 0)")
    p.add_argument(
        "--msize", type=_bounded(MIN_MSIZE, MAX_MSIZE), default=MAX_MSIZE, help="largest message accepted"
    )
    p.add_argument(
        "--max-fids", type=_bounded(1, 1 << 24), default=Limits.max_fids, help="fids per connection"
    )
    p.add_argument(
        "--max-connections",
        type=_bounded(1, 1 << 16),
        default=Limits.max_connections,
        help="at the limit, the longest-idle connection with no request being served makes room "
        f"(default {Limits.max_connections})",
    )
    deadlines = (
        ("--version-timeout", Limits.version_timeout, "close a connection that has not finished Tversion"),
        ("--frame-timeout", Limits.frame_timeout, "close a connection whose frame has not fully arrived"),
        ("--idle-timeout", Limits.idle_timeout, "close a connection idle with no fid in use"),
    )
    for option, default, what in deadlines:
        p.add_argument(
            option,
            type=_seconds,
            metavar="SECONDS",
            default=default,
            help=f"{what} after this many seconds (default {default:g}; 0: never)",
        )
    p.add_argument("-v", "--verbose", action="store_true", help="log every message")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.INFO
    logging.basicConfig(stream=sys.stderr, level=level, format="docteur-serve: %(message)s")
    try:
        where = parse_listen(args.listen)
    except ValueError as e:
        print(f"docteur-serve: {e}", file=sys.stderr)
        return 2
    limits = Limits(
        max_msize=args.msize,
        max_fids=args.max_fids,
        max_connections=args.max_connections,
        version_timeout=args.version_timeout,
        frame_timeout=args.frame_timeout,
        idle_timeout=args.idle_timeout,
    )
    try:
        remote = cache_options(args.cache_dir, args.no_cache)
        run(args.image, where, layout=args.layout, uid=args.uid, gid=args.gid, limits=limits, remote=remote)
    except (OSError, docteur.DocteurError) as e:
        print(f"docteur-serve: {_describe(e, args.image)}", file=sys.stderr)
        return 1
    return 0


def _describe(e: BaseException, image: str) -> str:
    if isinstance(e, OSError) and e.strerror:
        return f"{e.filename or image}: {e.strerror}"
    return str(e)
