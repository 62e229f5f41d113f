"""Atheris target: any bytes as a 9P frame, in each dialect, and as the data of a directory read.

The codec may only raise WireError (a frame it refuses), and what it decodes must encode back to the
same bytes.

    python fuzz/atheris_ninep.py [CORPUS_DIR ...] [-runs=N] [-max_total_time=S]   (libFuzzer options)
"""

from __future__ import annotations

import contextlib
import sys

import atheris

with atheris.instrument_imports():
    from docteur.ninep import wire


def test_one(data: bytes) -> None:
    for dialect in wire.Dialect:
        try:
            msg = wire.decode(data, dialect)
        except wire.WireError:
            continue
        assert wire.encode(msg, dialect) == data, (dialect, msg)
    for decode in (wire.decode_dirents, lambda d: wire.decode_stats(d, wire.Dialect.U)):
        with contextlib.suppress(wire.WireError):
            decode(data)


def main() -> None:
    atheris.Setup(sys.argv, test_one)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
