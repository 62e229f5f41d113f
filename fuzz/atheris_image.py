"""Atheris target: any bytes as an image. Every read path and docteur-verify may only raise CorruptImageError.

python fuzz/atheris_image.py [CORPUS_DIR ...] [-runs=N] [-max_total_time=S]   (libFuzzer options)
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys

import atheris

with atheris.instrument_imports():
    import docteur
    from docteur.errors import CorruptImageError
    from docteur.verify import verify

MAX_OBJECT_SIZE = 16 << 20
_EXPECTED = (CorruptImageError, FileNotFoundError, NotADirectoryError, IsADirectoryError)


def _read_everything(path: str) -> None:
    with docteur.open(path, max_object_size=MAX_OBJECT_SIZE) as img:
        for dirpath, dirnames, filenames in img.walk():
            for name in dirnames + filenames:
                full = f"{dirpath}/{name}" if dirpath else name
                st = img.stat(full)
                if st.mode == 0o120000:
                    img.readlink(full)
                elif st.mode != 0o40000:
                    img.read(full)
        for oid in list(img.objects)[:32]:
            with contextlib.suppress(KeyError):
                img.objects.get(oid)


def test_one(data: bytes) -> None:
    fd = os.memfd_create("image")
    try:
        os.write(fd, data)
        path = f"/proc/self/fd/{fd}"
        try:
            _read_everything(path)
        except OSError as e:
            if e.errno not in (errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.EINVAL):
                raise
        except _EXPECTED:
            pass
        report = verify(path)
        assert all(problem and "\n" not in problem for problem in report.problems)
    finally:
        os.close(fd)


def main() -> None:
    atheris.Setup(sys.argv, test_one)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
