"""The `docteur` command and its console-script shortcuts.

Imports stay inside the commands: `docteur-cat` in a script loop must start fast, and dulwich (for make)
is only loaded when needed.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Annotated, Any

import typer

from docteur.cli.errors import EXIT_FAILURE, one_line_errors

ImageArg = Annotated[str, typer.Argument(metavar="IMAGE", help="A docteur image: a file or a block device.")]
PathArg = Annotated[str, typer.Argument(metavar="PATH", help="A path inside the image, '/'-separated.")]


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
    epilog="Example: docteur make https://github.com/dinosaure/docteur disk.img && docteur ls disk.img",
)


def make(
    source: Annotated[
        str,
        typer.Argument(
            help="https:// http:// git:// ssh:// user@host:path, file://PATH, relativize://DIR, or a path "
            "(a repository if it is one, else a directory)."
        ),
    ],
    image: Annotated[str, typer.Argument(metavar="IMAGE", help="The image to write (replaced atomically).")],
    branch: Annotated[
        str | None, typer.Option("-b", "--branch", help="Ref to embed: main, refs/heads/main, a tag, an id.")
    ] = None,
    block_size: Annotated[int, typer.Option("--bs", help="Block size: a power of two from 512.")] = 512,
    date: Annotated[
        str | None, typer.Option("-d", "--date", help="RFC 3339 date of a directory's commit (default: now).")
    ] = None,
    history: Annotated[bool, typer.Option("--history", help="Embed the whole history of the ref.")] = False,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="No progress on stderr.")] = False,
) -> None:
    """Pack a Git repository or a directory into a docteur image.

    Examples:

      docteur-make https://github.com/dinosaure/docteur -b main disk.img

      docteur-make ./site site.img -d 2020-10-10T08:00:00+00:00

      docteur-make file:///srv/repo.git --history disk.img
    """
    with one_line_errors("docteur-make"):
        from docteur.make import make as run
        from docteur.make import parse_date

        when = parse_date(date) if date is not None else None
        run(source, image, branch=branch, block_size=block_size, date=when, history=history, quiet=quiet)


def verify(
    image: ImageArg,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON report.")] = False,
) -> None:
    """Check an image completely and print its commit, author, root tree and message.

    Exit status 0 only when every check holds; otherwise one line per problem and status 1.

    Example: docteur-verify disk.img
    """
    with one_line_errors("docteur-verify"):
        from docteur.verify import describe
        from docteur.verify import verify as run

        report = run(image)
    if as_json:
        info = report.info
        print(
            json.dumps(
                {
                    "image": image,
                    "ok": report.ok,
                    "problems": report.problems,
                    "commit": info.id if info else None,
                    "author": info.author.decode("utf-8", "replace") if info else None,
                    "root": info.tree if info else None,
                    "message": info.message.decode("utf-8", "replace") if info else None,
                    "objects": report.objects,
                    "block_size": report.block_size,
                    "size": report.size,
                },
                indent=2,
            )
        )
    elif report.info is not None and report.ok:
        sys.stdout.write(describe(report.info))
    for problem in report.problems if not as_json else []:
        sys.stderr.write(f"docteur-verify: {image}: {problem}\n")
    if not report.ok:
        raise typer.Exit(EXIT_FAILURE)


def _mode_string(mode: int) -> str:
    kind = {0o40000: "d", 0o120000: "l", 0o160000: "m"}.get(mode, "-")
    return kind + ("rwxr-xr-x" if mode in (0o100755, 0o40000, 0o160000) else "rw-r--r--")


def ls(
    image: ImageArg,
    path: Annotated[str, typer.Argument(metavar="[PATH]", help="A directory inside the image.")] = "",
    long: Annotated[bool, typer.Option("-l", "--long", help="Mode, size and object id too.")] = False,
    recursive: Annotated[bool, typer.Option("-R", "--recursive", help="Every path below PATH.")] = False,
) -> None:
    """List a directory of an image.

    Examples: docteur-ls disk.img docs    docteur-ls -lR disk.img
    """
    import docteur

    with one_line_errors("docteur-ls"), docteur.open(image) as img:
        base = path.strip("/")
        if recursive:
            entries = [
                (f"{d}/{n}" if d else n)
                for d, dirs, files in img.walk(base)
                for n in sorted(dirs + files, key=lambda n: n.encode("utf-8", "surrogateescape"))
            ]
            names = [e[len(base) + 1 :] if base else e for e in entries]
        else:
            names = img.listdir(base)
        out = sys.stdout
        for name in names:
            full = f"{base}/{name}" if base else name
            if long:
                st = img.stat(full)
                link = f" -> {img.readlink(full)}" if st.mode == 0o120000 else ""
                out.write(f"{_mode_string(st.mode)} {st.size:>10} {st.oid} {name}{link}\n")
            else:
                out.write(f"{name}\n")


def cat(
    image: ImageArg,
    paths: Annotated[list[str], typer.Argument(metavar="PATH...", help="Files inside the image.")],
) -> None:
    """Write files of an image to stdout, byte for byte.

    Example: docteur-cat disk.img README.md
    """
    import docteur

    with one_line_errors("docteur-cat"), docteur.open(image) as img:
        for p in paths:
            sys.stdout.buffer.write(img.read(p))
        sys.stdout.buffer.flush()


def stat(image: ImageArg, path: PathArg) -> None:
    """Print the mode, size and object id of a path (a symlink is described, not followed).

    Example: docteur stat disk.img docs/a.md
    """
    import docteur

    with one_line_errors("docteur-stat"), docteur.open(image) as img:
        st = img.stat(path)
        print(f"mode\t: {st.mode:06o}\nsize\t: {st.size}\noid\t: {st.oid}")
        if st.mode == 0o120000:
            print(f"target\t: {img.readlink(path)}")


def extract(
    image: ImageArg,
    target: Annotated[str, typer.Argument(metavar="DIR", help="Where to write; created if missing.")],
    path: Annotated[str, typer.Argument(metavar="[PATH]", help="A directory of the image.")] = "",
) -> None:
    """Write the image's tree (or the directory PATH of it) into DIR; never writes outside DIR.

    Existing files are never overwritten and symlinks in DIR are never followed.

    Example: docteur extract disk.img ./out
    """
    import docteur
    from docteur.extract import extract as run

    with one_line_errors("docteur-extract"), docteur.open(image) as img:
        run(img, target, path)


def serve(
    ctx: typer.Context,
) -> None:
    """Serve an image read-only over 9P (see docteur-serve --help)."""
    from docteur.ninep.cli import main as serve_main

    sys.exit(serve_main(ctx.args))


for command in (make, verify, ls, cat, stat, extract):
    app.command()(command)
app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True}, add_help_option=False
)(serve)


def _shortcut(command: Callable[..., None]) -> Callable[[], None]:
    single = _app()
    single.command()(command)
    return single


main = app
make_main = _shortcut(make)
verify_main = _shortcut(verify)
ls_main = _shortcut(ls)
cat_main = _shortcut(cat)

if __name__ == "__main__":
    app()
