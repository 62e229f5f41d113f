"""Byte-compile what the in-guest entry point can import into a zip; print the extension modules it needs.

Run by Debian's own python3.11 (the guest's interpreter), so the .pyc magic matches:

    python3.11 -S closure.py OUT.zip REPO EXTRA_PATH...

The zip holds sourceless .pyc files (stored, not deflated: the initramfs is compressed as a whole) and goes
to /usr/lib/python311.zip, which is on the interpreter's default path.
"""

from __future__ import annotations

import _imp
import importlib.util
import marshal
import modulefinder
import sys
import zipfile

# What `python3 -S -m docteur.guest` imports before any docteur code runs, beyond frozen modules.
ROOTS = ("runpy", "encodings", "encodings.aliases", "encodings.utf_8", "encodings.latin_1", "encodings.ascii")
# Imported by datrie's compiled module when it loads: modulefinder cannot look inside a .so.
COMPILED_IMPORTS = ("pickle", "tempfile")
ENTRY = "docteur.guest"
EXCLUDES = (
    # Reached only through self-tests (`if __name__ == "__main__": doctest...`), debuggers and help.
    *("doctest", "unittest", "test", "pdb", "pydoc", "tkinter", "idlelib", "lib2to3", "ensurepip", "venv"),
    # Optional features of modules the guest does use (argparse, asyncio, logging, shutil, random...),
    # imported lazily or inside try/except ImportError, which the guest never needs. Together with the
    # above they would triple the stdlib we ship. _hashlib also needs libcrypto: hashlib falls back to
    # the interpreter's built-in sha/md5/blake2.
    *("email", "http", "xmlrpc", "xml", "multiprocessing", "tarfile", "zipfile", "importlib.metadata"),
    *("decimal", "_pydecimal", "statistics", "ssl", "_hashlib", "ctypes", "bz2", "lzma"),
)


class Finder(modulefinder.ModuleFinder):
    def find_module(self, name: str, path: object, parent: object = None) -> object:
        # modulefinder crashes on a namespace package (a directory without __init__.py): skip it instead.
        try:
            return super().find_module(name, path, parent)
        except AttributeError:
            raise ImportError(name) from None


def main(out: str, repo: str, *extra: str) -> None:
    finder = Finder(path=[repo, *extra, *sys.path[1:]], excludes=EXCLUDES)
    for name in (*ROOTS, *COMPILED_IMPORTS, ENTRY):
        finder.import_hook(name)
    if ENTRY not in finder.modules:
        sys.exit(f"{ENTRY}: not found under {repo}")
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zf:
        for name, mod in sorted(finder.modules.items()):
            path = mod.__file__
            if path is None or _imp.is_frozen(name):  # inside the interpreter's binary already
                continue
            if path.endswith(".py"):
                arc = name.replace(".", "/") + ("/__init__.pyc" if mod.__path__ else ".pyc")
                zf.writestr(zipfile.ZipInfo(arc, date_time=(1980, 1, 1, 0, 0, 0)), pyc(path, arc))
            else:
                print(path)


def pyc(source: str, arc: str) -> bytes:
    with open(source, "rb") as f:
        code = compile(f.read(), "/usr/lib/python311.zip/" + arc[:-1], "exec", dont_inherit=True, optimize=0)
    # Header of an unchecked hash-based pyc (PEP 552): no source to compare against in the guest.
    flags = (3).to_bytes(4, "little")
    return importlib.util.MAGIC_NUMBER + flags + bytes(8) + marshal.dumps(code)


if __name__ == "__main__":
    main(*sys.argv[1:])
