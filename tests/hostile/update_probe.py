"""Judge one update case: `docteur patch` (its command, in this process) either rebuilds NEW exactly, or
refuses with one line, exit status 1, and leaves nothing beside its target. Any traceback, any other
image renamed into place, or any file left behind is a violation."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
from pathlib import Path

from docteur.cli import update

from .oracle import Verdict


def expectation(old: Path, new_sha256: str, path: Path) -> Path:
    path.write_text(json.dumps({"old": str(old), "new_sha256": new_sha256}))
    return path


def judge(case: Path, expected: Path, scratch: Path) -> Verdict:
    wanted = json.loads(expected.read_text())
    verdict = Verdict()
    out_dir = scratch / "patch-target"
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    target = out_dir / "new.img"
    err = io.StringIO()
    code: object = 0
    with contextlib.redirect_stderr(err):
        try:
            update.patch(wanted["old"], str(case), str(target))
        except SystemExit as e:
            code = e.code
        except BaseException as e:  # a crash: what the campaign exists to find
            verdict.bad(f"patch raised {type(e).__name__}: {e}")
            return verdict
    message = err.getvalue()
    left = os.listdir(out_dir)
    if code in (0, None):
        if left != ["new.img"] or hashlib.sha256(target.read_bytes()).hexdigest() != wanted["new_sha256"]:
            verdict.bad(f"patch succeeded but the target is not NEW (directory holds {left})")
        else:
            verdict.correct += 1
        return verdict
    verdict.rejected += 1
    lines = message.splitlines()
    if code != 1 or len(lines) != 1 or not lines[0].startswith("docteur-patch: error: "):
        verdict.bad(f"refusal is not one error line with status 1: status {code}, {message!r}")
    if left:
        verdict.bad(f"a refused patch left {left} beside its target")
    return verdict
