"""`docteur delta`, `docteur patch`, and `docteur info` of an update file (imports stay lazy, as in
commands.py)."""

from __future__ import annotations

import signal
import sys

from docteur.cli.errors import one_line_errors


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _terminate_like_ctrl_c() -> None:
    # kill, a timeout or a closed terminal unwinds like Ctrl-C: the temporary file is removed.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)


def delta(old: str, new: str, out: str, *, quiet: bool = False) -> None:
    with one_line_errors("docteur-delta"):
        from docteur.update.delta import delta as run

        _terminate_like_ctrl_c()
        made = run(old, new, out)
        if not quiet:
            sys.stderr.write(
                f"docteur-delta: {out}: {made.size} bytes; {made.copied_entries} of {made.objects} entries "
                f"copied from OLD, {made.shipped_entries} shipped\n"
            )


def patch(old: str, update: str, out: str) -> None:
    with one_line_errors("docteur-patch"):
        from docteur.update.apply import patch as run

        _terminate_like_ctrl_c()
        run(old, update, out)


def is_update(path: str) -> bool:
    from docteur.update.format import MAGIC

    try:
        with open(path, "rb") as f:
            return f.read(len(MAGIC)) == MAGIC
    except OSError:
        return False  # the image reader says what is wrong


def summary(path: str) -> dict[str, object]:
    from docteur.update.apply import check_update

    with open(path, "rb") as f:
        h, _, end = check_update(f)
    shipped_bytes = h.pack_length - 32 - h.copied_bytes
    return {
        "update": path,
        "size": end + 16,
        "old": {"commit": h.old_commit.hex(), "bytes": h.old_end, "sha256": h.old_sha256.hex()},
        "new": {
            "commit": h.new_commit.hex(),
            "bytes": h.new_size,
            "sha256": h.new_sha256.hex(),
            "objects": h.objects,
            "pack_bytes": h.pack_length,
            "block_size": h.block_size,
        },
        "copied": {"entries": h.copied_entries, "bytes": h.copied_bytes},
        "shipped": {"entries": h.objects - h.copied_entries, "bytes": shipped_bytes},
        "rebuilt_bytes": h.new_size - (h.pack_length - 32),
    }


def describe(s: dict[str, object]) -> str:
    old, new, copied, shipped = (s[k] for k in ("old", "new", "copied", "shipped"))
    assert isinstance(old, dict) and isinstance(new, dict)
    assert isinstance(copied, dict) and isinstance(shipped, dict)
    pack = int(new["pack_bytes"]) or 1
    return (
        f"update\t: {s['update']}, {s['size']} bytes\n"
        f"old\t: commit {old['commit']}, {old['bytes']} bytes, sha256 {old['sha256']}\n"
        f"new\t: commit {new['commit']}, {new['bytes']} bytes, sha256 {new['sha256']}\n"
        f"copied\t: {copied['entries']} of {new['objects']} entries, {copied['bytes']} bytes "
        f"({100 * int(copied['bytes']) / pack:.1f}% of NEW's PACK)\n"
        f"shipped\t: {shipped['entries']} entries, {shipped['bytes']} bytes of NEW's PACK, "
        f"in {s['size']} bytes of update\n"
        f"rebuilt\t: {s['rebuilt_bytes']} bytes: header, PACK header and trailer, IDX, sections, padding\n"
    )


def info(path: str, *, as_json: bool = False) -> None:
    with one_line_errors("docteur-info", path):
        found = summary(path)
        if as_json:
            import json

            print(json.dumps(found, indent=2))
        else:
            sys.stdout.write(describe(found))
