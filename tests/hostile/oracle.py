"""Run every read path over one image and judge each answer against what the image must give.

An answer is right when it is the expected one or a CorruptImageError with a one-line message; any other
exception, or wrong bytes, is a violation. A stat may report a size only the content could confirm
(sizes come from entry headers), so a wrong size is a violation only if reading that path succeeds.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from trees import read_fs_tree

import docteur
from docteur.errors import CorruptImageError
from docteur.fs.image import Image
from docteur.git.objects import MODE_DIR, MODE_GITLINK, MODE_LINK, TYPE_NAMES, object_id
from docteur.verify import verify

from .corpus import Expected

T = TypeVar("T")
MAX_OBJECT_SIZE = 64 << 20  # the harness's bound: declared sizes above it must be refused, not allocated
OBJECT_SAMPLE = 64
_KIND = {name.decode(): kind for kind, name in TYPE_NAMES.items()}


@dataclass
class Verdict:
    violations: list[str] = field(default_factory=list)
    rejected: int = 0  # answers that were a CorruptImageError
    correct: int = 0  # answers that were the expected value
    verified: bool | None = None  # what docteur-verify said

    def bad(self, text: str) -> None:
        self.violations.append(text)


class _Skip(Exception):
    """The call raised what the oracle allows: move on."""


def _call(verdict: Verdict, what: str, fn: Callable[[], T], *allowed: type[BaseException]) -> T:
    try:
        return fn()
    except CorruptImageError as e:
        message = str(e)
        if not message or "\n" in message:
            verdict.bad(f"{what}: CorruptImageError without a one-line message: {message!r}")
        verdict.rejected += 1
        raise _Skip from None
    except allowed:
        raise _Skip from None
    except Exception as e:
        verdict.bad(f"{what}: {type(e).__name__}: {e}")
        raise _Skip from None


def _same(verdict: Verdict, what: str, got: object, want: object) -> bool:
    if got == want:
        verdict.correct += 1
        return True
    verdict.bad(f"{what}: wrong answer {str(got)[:80]} (expected {str(want)[:80]})")
    return False


def _text(path: bytes) -> str:
    return path.decode("utf-8", "surrogateescape")


def probe(image: Path, expected: Expected, scratch: Path) -> Verdict:
    """Every read path of the Python API, extract and docteur-verify, judged."""
    verdict = Verdict()
    try:
        img = _call(verdict, "open", lambda: docteur.open(image, max_object_size=MAX_OBJECT_SIZE))
    except _Skip:
        if expected.opens and not verdict.violations:
            verdict.bad("open: refused an image that must open")
    else:
        with img:
            _walk(verdict, img, expected)
            for path in sorted(expected.nodes):
                _path(verdict, img, expected, path)
            for path in sorted(expected.fails):
                _failing(verdict, img, path)
            _missing(verdict, img)
            _others(verdict, img, expected)
            _objects(verdict, img)
            _extract(verdict, img, expected, scratch)
    _verify(verdict, image, expected)
    return verdict


def _walk(verdict: Verdict, img: Image, expected: Expected) -> None:
    try:
        for dirpath, dirnames, filenames in _call(verdict, "walk", lambda: iter(img.walk())):
            raw = dirpath.encode("utf-8", "surrogateescape")
            if raw and expected.nodes.get(raw, None) is None:
                verdict.bad(f"walk: yields /{dirpath}, which the image does not hold")
                continue
            names = {n.encode("utf-8", "surrogateescape") for n in dirnames + filenames}
            _same(verdict, f"walk /{dirpath}", names, expected.children(raw))
    except _Skip:
        pass
    except CorruptImageError:
        verdict.rejected += 1  # raised by the generator itself, mid-walk
    except Exception as e:
        verdict.bad(f"walk: {type(e).__name__}: {e}")


def _path(verdict: Verdict, img: Image, expected: Expected, path: bytes) -> None:
    node = expected.nodes[path]
    name = _text(path)
    size_lied = False
    try:
        st = _call(verdict, f"stat /{name}", lambda: img.stat(name))
        _same(verdict, f"stat /{name} mode", st.mode, node.mode)
        size_lied = node.mode != MODE_DIR and st.size != len(node.content)
    except _Skip:
        pass
    if node.mode in (MODE_DIR, MODE_GITLINK):
        for what, fn in (("listdir", img.listdir), ("scandir", lambda p: [n for n, _ in img.scandir(p)])):
            try:
                names = _call(verdict, f"{what} /{name}", lambda f=fn: f(name))  # type: ignore[misc]
                _same(verdict, f"{what} /{name}", {_encoded(n) for n in names}, expected.children(path))
            except _Skip:
                pass
        return
    read_ok = False
    for what, fn in (("read", img.read), ("open", lambda p: img.open(p).read())):
        try:
            data = _call(verdict, f"{what} /{name}", lambda f=fn: f(name))  # type: ignore[misc]
            read_ok = _same(verdict, f"{what} /{name}", data, node.content) or read_ok
        except _Skip:
            pass
    if read_ok and size_lied:
        verdict.bad(f"stat /{name}: wrong size, yet the content reads back")
    if node.mode == MODE_LINK:
        try:
            target = _call(verdict, f"readlink /{name}", lambda: img.readlink(name))
            _same(verdict, f"readlink /{name}", target, _text(node.content))
        except _Skip:
            pass


def _others(verdict: Verdict, img: Image, expected: Expected) -> None:
    """Every other commit the image holds (another ref's), read through img.at() like the header's. In a
    damaged image the commit may be lost (a damaged IDX): KeyError, as for any id the image lacks."""
    lost = () if expected.verify_ok else (KeyError,)
    for commit, nodes in expected.others.items():
        try:
            view = _call(verdict, f"at {commit}", lambda c=commit: img.at(c), *lost)  # type: ignore[misc]
        except _Skip:
            continue
        tree = Expected(nodes)
        _walk(verdict, view, tree)  # type: ignore[arg-type]
        for path in sorted(nodes):
            _path(verdict, view, tree, path)  # type: ignore[arg-type]


def _encoded(name: str) -> bytes:
    return name.encode("utf-8", "surrogateescape")


def _failing(verdict: Verdict, img: Image, path: bytes) -> None:
    """A hostile path: its content (or listing) has no right answer, so it must be refused."""
    name = _text(path)
    before = verdict.rejected
    for what, fn in (("read", img.read), ("listdir", img.listdir)):
        try:
            got = _call(
                verdict, f"{what} /{name}", lambda f=fn: f(name), IsADirectoryError, NotADirectoryError
            )  # type: ignore[misc]
            verdict.bad(f"{what} /{name}: answered {str(got)[:80]} for a hostile entry")
        except _Skip:
            pass
    if verdict.rejected == before:
        verdict.bad(f"/{name}: hostile entry not refused with CorruptImageError")


def _missing(verdict: Verdict, img: Image) -> None:
    for name in ("no/such/file", "ok.txt/below-a-file"):
        try:
            _call(verdict, f"read /{name}", lambda n=name: img.read(n), FileNotFoundError, NotADirectoryError)  # type: ignore[misc]
            verdict.bad(f"read /{name}: answered for a path that does not exist")
        except _Skip:
            pass


def _objects(verdict: Verdict, img: Image) -> None:
    """The object store (9P's /trees): each listed object is itself or refused (a sample of them: one get
    may resolve a chain of thousands of deltas, and a forged image may hold thousands of such chains)."""
    try:
        ids = _call(verdict, "objects", lambda: list(img.objects))
    except _Skip:
        return
    for oid in ids[:: max(1, len(ids) // OBJECT_SAMPLE)]:
        try:
            kind, data = _call(verdict, f"object {oid}", lambda o=oid: img.objects.get(o), KeyError)  # type: ignore[misc]
            if object_id(_KIND[kind], data).hex() != oid:
                verdict.bad(f"object {oid}: content does not hash to its id")
        except _Skip:
            pass


def _extract(verdict: Verdict, img: Image, expected: Expected, scratch: Path) -> None:
    from docteur.extract import extract

    sandbox = scratch / "sandbox"
    shutil.rmtree(sandbox, ignore_errors=True)
    target = sandbox / "target"
    sandbox.mkdir(parents=True)
    (sandbox / "sentinel").write_bytes(b"untouched")
    whole = True
    try:
        _call(verdict, "extract", lambda: extract(img, str(target)))
    except _Skip:
        whole = False
    if (
        sorted(os.listdir(sandbox)) != ["sentinel", "target"]
        or (sandbox / "sentinel").read_bytes() != b"untouched"
    ):
        verdict.bad(f"extract: wrote outside its target: {sorted(os.listdir(sandbox))}")
    got = read_fs_tree(target) if target.exists() else {}
    want = {p: (n.mode if n.mode != MODE_GITLINK else MODE_DIR, n.content) for p, n in expected.nodes.items()}
    if whole:
        _same(verdict, "extract", got, want)
    else:
        wrong = sorted(p for p, v in got.items() if v != want.get(p) and v[0] != MODE_DIR)
        if wrong:
            verdict.bad(f"extract: wrote wrong entries before failing: {wrong[:3]}")


def _verify(verdict: Verdict, image: Path, expected: Expected) -> None:
    try:
        report = verify(str(image))
    except Exception as e:
        verdict.bad(f"verify: {type(e).__name__}: {e}")
        return
    verdict.verified = report.ok
    if report.ok != expected.verify_ok:
        verdict.bad(f"verify: ok={report.ok}, expected {expected.verify_ok} ({report.problems[:2]})")
    if any("\n" in p for p in report.problems):
        verdict.bad("verify: a problem spans several lines")
