"""Byte-compile what the in-guest entry point can import; print the extension modules it needs (each as its
module name and path: a package's, like zstandard.backend_c, goes inside that package).

Run by Debian's own python3.11 (the guest's interpreter), so the .pyc magic matches:

    python3.11 -S closure.py STDLIB_DIR REPO EXTRA_PATH...

STDLIB_DIR is the guest's /usr/lib/python3.11, on the interpreter's default path. It gets sourceless .pyc
files: under TCG they import faster from a directory than from /usr/lib/python311.zip (about 0.15 s less
per start, measured), and the initramfs is compressed as a whole anyway.
"""

from __future__ import annotations

import _imp
import importlib.util
import marshal
import modulefinder
import sys
from pathlib import Path

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


def main(out: str, repo: str, *extra: str) -> None:
    finder = modulefinder.ModuleFinder(path=[repo, *extra, *sys.path[1:]], excludes=EXCLUDES)
    for name in (*ROOTS, *COMPILED_IMPORTS, ENTRY):
        finder.import_hook(name)
    if ENTRY not in finder.modules:
        sys.exit(f"{ENTRY}: not found under {repo}")
    for name, mod in sorted(finder.modules.items()):
        path = mod.__file__
        # Frozen modules are inside the interpreter's binary already; but os.pyc is the landmark by which
        # the interpreter finds this directory at start-up.
        if path is None or (_imp.is_frozen(name) and name != "os"):
            continue
        if path.endswith(".py"):
            rel = name.replace(".", "/") + ("/__init__.pyc" if mod.__path__ else ".pyc")
            target = Path(out, rel)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(pyc(path, f"/usr/lib/python3.11/{rel[:-1]}"))
        else:
            print(name, path)


def pyc(source: str, shown_as: str) -> bytes:
    with open(source, "rb") as f:
        code = compile(f.read(), shown_as, "exec", dont_inherit=True, optimize=0)
    # Header of an unchecked hash-based pyc (PEP 552): there is no source to compare against in the guest.
    flags = (1).to_bytes(4, "little")
    return importlib.util.MAGIC_NUMBER + flags + bytes(8) + marshal.dumps(code)


if __name__ == "__main__":
    main(*sys.argv[1:])
