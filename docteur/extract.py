"""Write an image's tree out to a directory, never outside it.

Every file is created relative to an open descriptor of its parent directory with O_NOFOLLOW and
O_EXCL: a name cannot climb out (the reader rejects '..', '/' and NUL in names), a symlink already in the
target (or one just extracted) is never followed, and nothing that exists is overwritten.
"""

from __future__ import annotations

import contextlib
import os

from docteur.fs.entry import is_dir, normalize
from docteur.fs.image import Image
from docteur.git.objects import MODE_DIR, MODE_EXEC, MODE_LINK

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def _write_file(dir_fd: int, name: bytes, data: bytes, mode: int) -> None:
    fd = os.open(name, _FILE_FLAGS, 0o755 if mode == MODE_EXEC else 0o644, dir_fd=dir_fd)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def _subdir(dir_fd: int, name: bytes) -> int:
    # An existing real directory is fine; a symlink there is refused by O_NOFOLLOW below.
    with contextlib.suppress(FileExistsError):
        os.mkdir(name, 0o755, dir_fd=dir_fd)
    return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)


def extract(image: Image, target: str, path: str = "") -> int:
    """Extract `path` (the whole tree by default) into `target`; return the number of entries written."""
    os.makedirs(target, exist_ok=True)
    top = normalize(path)
    written = 0
    pending = [(top, os.open(target, _DIR_FLAGS))]
    try:
        while pending:
            key, dir_fd = pending.pop()
            try:
                for name, st in image.scandir(key):
                    raw = name.encode("utf-8", "surrogateescape")
                    child = key + b"/" + raw if key else raw
                    if st.mode == MODE_DIR:
                        pending.append((child, _subdir(dir_fd, raw)))
                    elif is_dir(st.mode):
                        os.close(_subdir(dir_fd, raw))  # a submodule: an empty directory
                    elif st.mode == MODE_LINK:
                        os.symlink(image.read(child), raw, dir_fd=dir_fd)
                    else:
                        _write_file(dir_fd, raw, image.read(child), st.mode)
                    written += 1
            finally:
                os.close(dir_fd)
    finally:
        for _, fd in pending:
            os.close(fd)
    return written
