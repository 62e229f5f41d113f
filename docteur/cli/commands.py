"""What each command does, without argument parsing: the typer app (main.py) and the typer-free fast path
of the shortcut scripts (fast.py) both call these, so both behave and fail the same way.

Imports stay inside the functions: `docteur-cat` in a script loop must start fast, and dulwich (for make)
or mfusepy (for mount) are only loaded when needed.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

from docteur.cli.errors import EXIT_FAILURE, one_line_errors

# Not `from typing import TYPE_CHECKING`: typing alone costs the fast paths ~8 ms of start-up.
TYPE_CHECKING = False

if TYPE_CHECKING:
    from docteur.fs.image import Image, Stat, View


Remote = dict[str, object]  # the options of a remote image (docteur.open's keywords)


def _print_json(document: object) -> None:
    import json  # only --json pays for it

    print(json.dumps(document, indent=2))


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def make(
    source: str,
    image: str,
    *,
    branch: list[str] | None = None,
    all_branches: bool = False,
    tags: bool = False,
    block_size: int = 512,
    date: str | None = None,
    history: bool = False,
    index: bool = True,
    quiet: bool = False,
    base: str | None = None,
    compress: str = "zlib",
) -> None:
    with one_line_errors("docteur-make"):
        import signal

        from docteur.make import make as run
        from docteur.make import parse_date

        # A terminated make (kill, timeout, a closed terminal) unwinds like Ctrl-C: the temporary image
        # beside the target and the scratch directory are removed, and git pack-objects is stopped.
        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, _interrupt)
        when = parse_date(date) if date is not None else None
        run(
            source,
            image,
            branch=branch,
            all_branches=all_branches,
            tags=tags,
            block_size=block_size,
            date=when,
            history=history,
            index=index,
            quiet=quiet,
            base=base,
            compress=compress,
        )


def verify(image: str, *, as_json: bool = False, remote: Remote | None = None) -> None:
    with one_line_errors("docteur-verify", image):
        from docteur.verify import describe
        from docteur.verify import verify as run

        report = run(image, **(remote or {}))
        info = report.info
        if as_json:
            document = {
                "image": image,
                "ok": report.ok,
                "problems": report.problems,
                "commit": info.id if info else None,
                "author": info.author.decode("utf-8", "replace") if info else None,
                "root": info.tree if info else None,
                "message": info.message.decode("utf-8", "replace") if info else None,
                "objects": report.objects,
                "block_size": report.block_size,
                "refs": report.refs,
                "size": report.size,
            }
            _print_json(document)
        else:
            if info is not None and report.ok:
                sys.stdout.write(describe(info, report.refs))
            for problem in report.problems:
                sys.stderr.write(f"docteur-verify: {image}: {problem}\n")
    if not report.ok:
        raise SystemExit(EXIT_FAILURE)


def _entry_json(img: Image, path: str, name: str, st: Stat) -> dict[str, object]:
    from docteur.cli.style import MODE_LINK, kind

    entry: dict[str, object] = {
        "name": name,
        "path": path,
        "type": kind(st.mode),
        "mode": f"{st.mode:06o}",
        "size": st.size,
        "oid": st.oid,
    }
    if st.mode == MODE_LINK:
        entry["target"] = img.readlink(path)
    return entry


def _listing(img: Image, base: str, recursive: bool) -> Iterator[tuple[str, str]]:
    """(name as shown, full path) of each entry below `base`; names under -R are relative to `base`."""
    if not recursive:
        for name in img.listdir(base):
            yield name, f"{base}/{name}" if base else name
        return
    for directory, dirs, files in img.walk(base):
        for name in sorted(dirs + files, key=lambda n: n.encode("utf-8", "surrogateescape")):
            full = f"{directory}/{name}" if directory else name
            yield (full[len(base) + 1 :] if base else full), full


def ls(
    image: str,
    path: str = "",
    *,
    long: bool = False,
    recursive: bool = False,
    human: bool = False,
    as_json: bool = False,
    color: str = "auto",
    remote: Remote | None = None,
) -> None:
    import docteur
    from docteur.cli.style import MODE_LINK, coloured, human_size, mode_string, use_colour

    with one_line_errors("docteur-ls", image):
        paint = use_colour(color, sys.stdout)
        with docteur.open(image, **(remote or {})) as img:
            base = path.strip("/")
            entries = _listing(img, base, recursive)
            if as_json:
                listed = [_entry_json(img, full, name, img.stat(full)) for name, full in entries]
                _print_json(listed)
                return
            out = sys.stdout
            for name, full in entries:
                if not (long or paint):
                    out.write(f"{name}\n")
                    continue
                st = img.stat(full)
                shown = coloured(name, st.mode) if paint else name
                if long:
                    size = f"{human_size(st.size):>6}" if human else f"{st.size:>10}"
                    link = f" -> {img.readlink(full)}" if st.mode == MODE_LINK else ""
                    out.write(f"{mode_string(st.mode)} {size} {st.oid} {shown}{link}\n")
                else:
                    out.write(f"{shown}\n")


def cat(image: str, paths: list[str], *, remote: Remote | None = None) -> None:
    import docteur

    with one_line_errors("docteur-cat", image), docteur.open(image, **(remote or {})) as img:
        out = sys.stdout.buffer
        for p in paths:
            out.write(img.read(p))
        out.flush()


def stat(image: str, path: str, *, as_json: bool = False, remote: Remote | None = None) -> None:
    import docteur
    from docteur.cli.style import MODE_LINK

    with one_line_errors("docteur-stat", image), docteur.open(image, **(remote or {})) as img:
        st = img.stat(path)
        if as_json:
            _print_json(_entry_json(img, path.strip("/"), path.strip("/").rpartition("/")[2], st))
            return
        print(f"mode\t: {st.mode:06o}\nsize\t: {st.size}\noid\t: {st.oid}")
        if st.mode == MODE_LINK:
            print(f"target\t: {img.readlink(path)}")


def extract(image: str, target: str, path: str = "", *, remote: Remote | None = None) -> None:
    import docteur
    from docteur.extract import extract as run

    with one_line_errors("docteur-extract", image), docteur.open(image, **(remote or {})) as img:
        run(img, target, path)


def info(image: str, *, as_json: bool = False, remote: Remote | None = None) -> None:
    import docteur
    from docteur.cli import update
    from docteur.cli.info import describe, summarize

    if update.is_update(image):
        return update.info(image, as_json=as_json)

    with one_line_errors("docteur-info", image), docteur.open(image, **(remote or {})) as img:
        summary = summarize(img)
        if as_json:
            _print_json(summary.as_dict())
        else:
            sys.stdout.write(describe(summary))


def _view(img: Image, ref: str) -> View:
    try:
        return img.at(ref)
    except KeyError:
        from docteur.errors import DocteurError

        raise DocteurError(f"{img.path}: no ref or commit {ref!r} in the image") from None


def diff(image: str, old: str, new: str, *, as_json: bool = False, remote: Remote | None = None) -> None:
    import docteur

    with one_line_errors("docteur-diff", image), docteur.open(image, **(remote or {})) as img:
        changes = _view(img, new).diff(_view(img, old))
        if as_json:
            _print_json([{"change": what, "path": path} for what, path in changes])
        else:
            sys.stdout.write("".join(f"{what} {path}\n" for what, path in changes))


def log(
    image: str,
    ref: str = "HEAD",
    *,
    limit: int | None = None,
    as_json: bool = False,
    remote: Remote | None = None,
) -> None:
    import docteur

    with one_line_errors("docteur-log", image), docteur.open(image, **(remote or {})) as img:
        commits = _view(img, ref).log(limit)
        if as_json:
            _print_json(
                [
                    {
                        "commit": c.id,
                        "tree": c.tree,
                        "parents": c.parents,
                        "author": c.author.decode("utf-8", "replace"),
                        "author_time": c.author_time,
                        "committer": c.committer.decode("utf-8", "replace"),
                        "commit_time": c.commit_time,
                        "message": c.message.decode("utf-8", "replace"),
                    }
                    for c in commits
                ]
            )
            return
        for c in commits:
            subject = c.message.decode("utf-8", "replace").partition("\n")[0]
            sys.stdout.write(f"{c.id} {subject}\n")


def convert(
    image: str, output: str, *, compress: str, block_size: int | None = None, quiet: bool = False
) -> None:
    with one_line_errors("docteur-convert", image):
        import signal

        from docteur.convert import convert as run

        for sig in (signal.SIGTERM, signal.SIGHUP):  # unwind like Ctrl-C: nothing half-written is left
            signal.signal(sig, _interrupt)
        run(image, output, compress=compress, block_size=block_size, quiet=quiet)


def reindex(image: str, output: str | None = None, *, block_size: int | None = None) -> None:
    with one_line_errors("docteur-reindex", image):
        from docteur.reindex import reindex as run

        run(image, output, block_size=block_size)


def mount(
    image: str, mountpoint: str, *, foreground: bool = False, options: str = "", remote: Remote | None = None
) -> None:
    with one_line_errors("docteur-mount", image):
        from docteur.fuse.mount import mount as run

        run(image, mountpoint, foreground=foreground, options=options, remote=remote)
