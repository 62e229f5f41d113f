"""The `docteur` command (typer) and the typer side of its console-script shortcuts.

The commands' work is in commands.py; this module only declares arguments, help and shell completion, and
turns typer's usage errors into one line like every other error.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Annotated, Any

import typer

from docteur.bytesource.location import cache_options
from docteur.cli import commands
from docteur.cli.errors import EXIT_CODES, EXIT_USAGE
from docteur.cli.style import COLOR_CHOICES, MODE_DIR

# typer 0.28 vendors click; BadParameter's base is click's UsageError whichever click it uses.
_UsageError: type[Exception] = typer.BadParameter.__bases__[0]


def _complete_path(ctx: typer.Context, incomplete: str) -> list[str]:
    """Shell completion of a path inside the image named earlier on the command line."""
    import docteur

    image = ctx.params.get("image")
    directory, _, start = incomplete.rpartition("/")
    try:
        with docteur.open(image) as img:  # type: ignore[arg-type]
            found = []
            for name, st in img.scandir(directory):
                if name.startswith(start):
                    full = f"{directory}/{name}" if directory else name
                    found.append(full + "/" if st.mode == MODE_DIR else full)
            return found
    except Exception:  # completion must never print a traceback into the shell
        return []


ImageArg = Annotated[
    str, typer.Argument(metavar="IMAGE", help="A docteur image: a file, a block device or an https:// URL.")
]
PathArg = Annotated[
    str,
    typer.Argument(
        metavar="PATH", help="A path inside the image, '/'-separated.", autocompletion=_complete_path
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]
CacheDirOpt = Annotated[
    str | None,
    typer.Option(
        "--cache-dir",
        metavar="DIR",
        help="Where a remote image's blocks are kept (default: ~/.cache/docteur).",
    ),
]
NoCacheOpt = Annotated[
    bool, typer.Option("--no-cache", help="Keep no disk cache of a remote image's blocks.")
]


def _app(**kw: Any) -> typer.Typer:
    return typer.Typer(
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
        context_settings={"help_option_names": ["-h", "--help"]},
        **kw,
    )


app = _app(
    no_args_is_help=True,
    help="Make, verify and read docteur images: read-only, block-aligned disk images of Git trees.",
    epilog="Example: docteur make https://github.com/dinosaure/docteur disk.img && docteur ls disk.img\n\n"
    + EXIT_CODES,
)


def make(
    source: Annotated[
        str,
        typer.Argument(
            metavar="SOURCE",
            help="https:// http:// git:// ssh:// user@host:path, file://PATH, relativize://DIR, or a path "
            "(a repository if it is one, else a directory).",
        ),
    ],
    image: Annotated[str, typer.Argument(metavar="IMAGE", help="The image to write (replaced atomically).")],
    branch: Annotated[
        list[str] | None,
        typer.Option(
            "-b",
            "--branch",
            help="Ref to embed: main, refs/heads/main, a tag, an id. Repeat it for several refs: the "
            "first is the header's commit.",
        ),
    ] = None,
    all_branches: Annotated[bool, typer.Option("--all-branches", help="Embed every branch.")] = False,
    tags: Annotated[bool, typer.Option("--tags", help="Embed every tag (peeled to its commit).")] = False,
    block_size: Annotated[int, typer.Option("--bs", help="Block size: a power of two from 512.")] = 512,
    date: Annotated[
        str | None, typer.Option("-d", "--date", help="RFC 3339 date of a directory's commit (default: now).")
    ] = None,
    history: Annotated[bool, typer.Option("--history", help="Embed the whole history of the ref.")] = False,
    index: Annotated[
        bool,
        typer.Option(
            "--index/--no-index",
            help="Write the path index after the IDX (default); --no-index writes only what OCaml "
            "docteur writes.",
        ),
    ] = True,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="No progress on stderr.")] = False,
    base: Annotated[
        str | None,
        typer.Option(
            "--base",
            metavar="OLD",
            help="An image to make against: objects it holds keep its representation and order, so that "
            "docteur delta OLD IMAGE stays small.",
        ),
    ] = None,
    compress: Annotated[
        str,
        typer.Option(
            "--compress",
            metavar="KIND",
            help="zlib (default: every object in the PACK, as OCaml docteur reads it) or zstd (files in "
            "zstd frames: smaller, faster to read; the same ids).",
            autocompletion=lambda: ["zlib", "zstd"],
        ),
    ] = "zlib",
) -> None:
    """Pack a Git repository or a directory into a docteur image.

    Examples:

      docteur-make https://github.com/dinosaure/docteur -b main disk.img

      docteur-make ./site site.img -d 2020-10-10T08:00:00+00:00

      docteur-make file:///srv/repo.git --history disk.img

      docteur-make . disk.img -b main -b feature --tags

      docteur-make ./site site-2.img --base site-1.img

      docteur-make ./docs docs.img --compress zstd
    """
    commands.make(
        source,
        image,
        branch=branch or [],
        all_branches=all_branches,
        tags=tags,
        block_size=block_size,
        date=date,
        history=history,
        index=index,
        compress=compress,
        quiet=quiet,
        base=base,
    )


def verify(
    image: ImageArg,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON report.")] = False,
    cache_dir: CacheDirOpt = None,
    no_cache: NoCacheOpt = False,
) -> None:
    """Check an image completely and print its commit, author, root tree and message.

    Exit status 0 only when every check holds; otherwise one line per problem and status 1.

    Example: docteur-verify disk.img
    """
    commands.verify(image, as_json=as_json, remote=cache_options(cache_dir, no_cache))


def ls(
    image: ImageArg,
    path: Annotated[
        str,
        typer.Argument(metavar="[PATH]", help="A directory inside the image.", autocompletion=_complete_path),
    ] = "",
    long: Annotated[bool, typer.Option("-l", "--long", help="Mode, size and object id too.")] = False,
    recursive: Annotated[bool, typer.Option("-R", "--recursive", help="Every path below PATH.")] = False,
    human: Annotated[
        bool, typer.Option("-h", "--human-readable", help="Sizes like 1.1K, 23M with -l.")
    ] = False,
    as_json: JsonOpt = False,
    color: Annotated[
        str,
        typer.Option(
            "--color",
            metavar="WHEN",
            help="Colour names by kind: auto (a terminal, unless NO_COLOR is set), always or never.",
            autocompletion=lambda: list(COLOR_CHOICES),
        ),
    ] = "auto",
    cache_dir: CacheDirOpt = None,
    no_cache: NoCacheOpt = False,
) -> None:
    """List a directory of an image (--help for help: -h means human sizes, as in ls).

    Examples: docteur-ls disk.img docs    docteur-ls -lhR disk.img    docteur-ls --json disk.img
    """
    commands.ls(
        image,
        path,
        long=long,
        recursive=recursive,
        human=human,
        as_json=as_json,
        color=color,
        remote=cache_options(cache_dir, no_cache),
    )


def cat(
    image: ImageArg,
    paths: Annotated[
        list[str],
        typer.Argument(metavar="PATH...", help="Files inside the image.", autocompletion=_complete_path),
    ],
    cache_dir: CacheDirOpt = None,
    no_cache: NoCacheOpt = False,
) -> None:
    """Write files of an image to stdout, byte for byte.

    Example: docteur-cat disk.img README.md
    """
    commands.cat(image, paths, remote=cache_options(cache_dir, no_cache))


def stat(
    image: ImageArg,
    path: PathArg,
    as_json: JsonOpt = False,
    cache_dir: CacheDirOpt = None,
    no_cache: NoCacheOpt = False,
) -> None:
    """Print the mode, size and object id of a path (a symlink is described, not followed).

    Example: docteur stat disk.img docs/a.md
    """
    commands.stat(image, path, as_json=as_json, remote=cache_options(cache_dir, no_cache))


def info(
    image: ImageArg, as_json: JsonOpt = False, cache_dir: CacheDirOpt = None, no_cache: NoCacheOpt = False
) -> None:
    """Summarise an image: commit, history depth, objects, tree, sizes, compression ratio, block size.

    Cheap on large images (only trees are read); docteur verify checks every byte. Given an update
    (docteur delta), its two commits, sizes, and how much of NEW is copied, shipped and rebuilt.

    Example: docteur info disk.img    docteur info 1-to-2.update
    """
    commands.info(image, as_json=as_json, remote=cache_options(cache_dir, no_cache))


def extract(
    image: ImageArg,
    target: Annotated[str, typer.Argument(metavar="DIR", help="Where to write; created if missing.")],
    path: Annotated[
        str, typer.Argument(metavar="[PATH]", help="A directory of the image.", autocompletion=_complete_path)
    ] = "",
    cache_dir: CacheDirOpt = None,
    no_cache: NoCacheOpt = False,
) -> None:
    """Write the image's tree (or the directory PATH of it) into DIR; never writes outside DIR.

    Existing files are never overwritten and symlinks in DIR are never followed.

    Example: docteur extract disk.img ./out
    """
    commands.extract(image, target, path, remote=cache_options(cache_dir, no_cache))


def diff(
    image: ImageArg,
    old: Annotated[str, typer.Argument(metavar="A", help="A ref or a commit id of the image.")],
    new: Annotated[str, typer.Argument(metavar="B", help="Another.")],
    as_json: JsonOpt = False,
    cache_dir: CacheDirOpt = None,
    no_cache: NoCacheOpt = False,
) -> None:
    """List the files that differ from A to B, one line each, as DataKit's diff/ files do: "+ path"
    added, "- path" removed, "* path" modified.

    Example: docteur diff disk.img main feature
    """
    commands.diff(image, old, new, as_json=as_json, remote=cache_options(cache_dir, no_cache))


def log(
    image: ImageArg,
    ref: Annotated[
        str, typer.Argument(metavar="[REF]", help="A ref or a commit id (default: HEAD).")
    ] = "HEAD",
    limit: Annotated[int | None, typer.Option("-n", "--max-count", help="At most this many commits.")] = None,
    as_json: JsonOpt = False,
    cache_dir: CacheDirOpt = None,
    no_cache: NoCacheOpt = False,
) -> None:
    """List REF's commit and the ancestors the image holds, newest first, one line each: id and subject
    (every commit of the ref's history for an image made with --history).

    Example: docteur log disk.img main
    """
    commands.log(image, ref, limit=limit, as_json=as_json, remote=cache_options(cache_dir, no_cache))


def convert(
    image: ImageArg,
    output: Annotated[str, typer.Argument(metavar="OUT", help="The image to write (replaced atomically).")],
    compress: Annotated[
        str,
        typer.Option(
            "--compress",
            metavar="KIND",
            help="zstd or zlib: the kind OUT is.",
            autocompletion=lambda: ["zlib", "zstd"],
        ),
    ],
    block_size: Annotated[
        int | None, typer.Option("--bs", help="Block size (default: the image's own).")
    ] = None,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="No progress on stderr.")] = False,
) -> None:
    """Write an image as the other kind: zlib (every object in the PACK, as OCaml docteur reads it) or
    zstd (files in zstd frames). Commits, trees, refs and history keep their ids and names.

    Example: docteur convert disk.img small.img --compress zstd
    """
    commands.convert(image, output, compress=compress, block_size=block_size, quiet=quiet)


def reindex(
    image: ImageArg,
    output: Annotated[
        str | None, typer.Option("-o", "--output", metavar="OUT", help="Write here instead of over IMAGE.")
    ] = None,
    block_size: Annotated[
        int | None, typer.Option("--bs", help="Block size (default: the image's own).")
    ] = None,
) -> None:
    """Add the path index to an image made without one (by OCaml docteur, or an older docteur).

    The PACK and IDX are kept as they are; the result is what docteur-make writes for the same source
    and options, written atomically (a temporary file, then a rename).

    Examples: docteur reindex ocaml.img    docteur reindex old.img -o new.img
    """
    commands.reindex(image, output, block_size=block_size)


def delta(
    old: Annotated[str, typer.Argument(metavar="OLD", help="The image the receiver has.")],
    new: Annotated[str, typer.Argument(metavar="NEW", help="The image it should get.")],
    output: Annotated[
        str, typer.Option("-o", "--output", metavar="UPDATE", help="The update to write (atomically).")
    ],
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="No summary on stderr.")] = False,
) -> None:
    """Write the update that turns image OLD into image NEW: what NEW has and OLD lacks.

    The update is applied once here before it is written: it rebuilds NEW bit for bit.

    Example: docteur delta disk-1.img disk-2.img -o 1-to-2.update
    """
    from docteur.cli import update

    update.delta(old, new, output, quiet=quiet)


def patch(
    old: Annotated[
        str, typer.Argument(metavar="OLD", help="The image the update applies to (file or device).")
    ],
    update_file: Annotated[str, typer.Argument(metavar="UPDATE", help="An update from docteur delta.")],
    output: Annotated[
        str,
        typer.Option(
            "-o", "--output", metavar="NEW", help="Where to write NEW (replaced atomically; may be OLD)."
        ),
    ],
) -> None:
    """Rebuild image NEW, bit for bit, from OLD and an update.

    OLD is checked before anything is written and only read; NEW is renamed into place once it hashes
    to what the update names. Wrong base, damaged update or full disk: one line, exit 1, nothing written.

    Example: docteur patch disk-1.img 1-to-2.update -o disk-2.img
    """
    from docteur.cli import update

    update.patch(old, update_file, output)


def mount(
    image: ImageArg,
    mountpoint: Annotated[str, typer.Argument(metavar="MOUNTPOINT", help="An existing directory.")],
    foreground: Annotated[
        bool, typer.Option("-f", "--foreground", help="Stay in the foreground until unmounted.")
    ] = False,
    options: Annotated[
        str, typer.Option("-o", "--options", metavar="OPT,...", help="More FUSE options, e.g. allow_other.")
    ] = "",
    cache_dir: CacheDirOpt = None,
    no_cache: NoCacheOpt = False,
) -> None:
    """Mount an image read-only with FUSE; unmount with: fusermount3 -u MOUNTPOINT

    Files show their Git modes, the commit's time and stable inode numbers; every write fails with EROFS.
    In the background by default; -f keeps it in the foreground (Ctrl-C unmounts).

    Example: docteur mount disk.img /mnt/disk && ls /mnt/disk && fusermount3 -u /mnt/disk
    """
    commands.mount(
        image,
        mountpoint,
        foreground=foreground,
        options=options,
        remote=cache_options(cache_dir, no_cache),
    )


def serve(
    ctx: typer.Context,
) -> None:
    """Serve an image read-only over 9P (see docteur-serve --help)."""
    from docteur.ninep.cli import main as serve_main

    sys.exit(serve_main(ctx.args))


_HELP_IS_LONG_ONLY = {"help_option_names": ["--help"]}  # ls keeps -h for human sizes, as GNU ls does
for command in (make, verify, ls, cat, stat, info, extract, diff, log, convert, reindex, delta, patch, mount):
    app.command(epilog=EXIT_CODES, context_settings=_HELP_IS_LONG_ONLY if command is ls else None)(command)
app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True}, add_help_option=False
)(serve)


def run(typer_app: typer.Typer, args: Sequence[str] | None = None, prog_name: str | None = None) -> None:
    """Run an app as its console script would, with usage errors on one line: `PROG: error: ... (see ...)`."""
    command = typer.main.get_command(typer_app)
    try:
        code = command.main(args, prog_name=prog_name, standalone_mode=False)
    except _UsageError as e:
        ctx = getattr(e, "ctx", None)
        if type(e).__name__ == "NoArgsIsHelpError" and ctx is not None:
            sys.stdout.write(ctx.get_help() + "\n")  # `docteur` alone shows its help
            raise SystemExit(EXIT_USAGE) from None
        where = ctx.command_path if ctx is not None else prog_name or command.name
        message = e.format_message().rstrip(".")  # type: ignore[attr-defined]
        sys.stderr.write(f"{where}: error: {message} (see '{where} --help')\n")
        raise SystemExit(EXIT_USAGE) from None
    raise SystemExit(code if isinstance(code, int) else 0)


def _shortcut(command: Callable[..., None]) -> Callable[[], None]:
    single = _app()
    single.command(epilog=EXIT_CODES, context_settings=_HELP_IS_LONG_ONLY if command is ls else None)(command)
    return lambda: run(single)


def main() -> None:
    run(app)


make_main = _shortcut(make)
verify_main = _shortcut(verify)
ls_main = _shortcut(ls)
cat_main = _shortcut(cat)
mount_main = _shortcut(mount)

if __name__ == "__main__":
    main()
