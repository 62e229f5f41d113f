"""Read a tree through the guest kernel's 9P client: docteur-serve vs diod, over the same transport.

Both servers listen on a unix socket that the QEMU guest (unikernel/) mounts as a virtconsole with
trans=fd, 9P2000.L; docteur-serve serves an image of the tree, diod the checked-out tree itself. The guest
is the bottleneck (TCG), so only ratios from the same run mean anything. Boots alternate between the
servers; in each, a Python loop reads every file, then stats and opens small files, a few times; each
figure is the best round. The guest mounts without caching, so every round goes to the server.

    python -m bench.bench_9p [DIR]     # default: the generated "book" corpus
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from bench.table import Row, render

REPO = Path(__file__).resolve().parent.parent
ROUNDS = 2  # reads of the whole tree per boot
BOOTS = 2  # boots per server, alternating
SMALL = 200  # how many small files the latency loops touch
# Runs in the guest (python3 -S): prints one line per round: read seconds, bytes, stat s/op, open s/op.
GUEST = f"""
import os,time
t=time.perf_counter
os.chdir("/mnt")
ps=sorted(os.path.join(d,f) for d,_,fs in os.walk(".") for f in fs)
ps=[p for p in ps if not os.path.islink(p)]
sm=sorted(ps,key=os.path.getsize)[:{SMALL}]
for _ in range({ROUNDS}):
 s=t();n=0
 for p in ps:
  with open(p,"rb") as f:
   while b:=f.read(1<<20):n+=len(b)
 r=t()-s;s=t()
 for p in sm:os.stat(p)
 st=t()-s;s=t()
 for p in sm:
  with open(p,"rb") as f:f.read(1)
 print(r,n,st/len(sm),(t()-s)/len(sm))
"""


class Figures(NamedTuple):
    read: float  # seconds for every file
    bytes: int
    stat: float  # seconds per stat of a small file
    open: float  # seconds per open, read, close of a small file


def _measure(sock: Path, aname: str = "") -> Figures:
    from unikernel import guest

    # run_mounted appends its version argument to the mount options: the way to give diod its aname.
    version = "9p2000.L" + (f",aname={aname}" if aname else "")
    run = guest.run_mounted(sock, f"python3 -S -c '{GUEST}'", version, timeout=1800)
    lines = run.stdout.decode().splitlines()
    if run.rc != 0 or not lines:
        raise RuntimeError(f"guest failed ({run.rc}): {run.stderr.decode(errors='replace').strip()}")
    return _best([Figures(float(r), int(n), float(s), float(o)) for r, n, s, o in map(str.split, lines)])


@contextlib.contextmanager
def _diod(tree: Path, sock: Path) -> Iterator[None]:
    """diod serving `tree`, one session per connection, behind socat on a unix socket."""
    diod = f"diod -f -n --rfdno 0 --wfdno 1 -e {tree} -c /dev/null"
    proc = subprocess.Popen(
        ["socat", f"UNIX-LISTEN:{sock},fork", f"EXEC:{diod}"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        from unikernel.guest import wait_for_socket

        wait_for_socket(sock, proc, Path(os.devnull), "socat")
        yield
    finally:
        proc.terminate()
        proc.wait()


def _best(runs: list[Figures]) -> Figures:
    return Figures(
        min(r.read for r in runs), runs[0].bytes, min(r.stat for r in runs), min(r.open for r in runs)
    )


def rows(tree: Path, source: Path | None = None, name: str | None = None) -> list[Row]:
    """Rows for `tree` (diod serves it), its image made from `source` (default: the tree itself)."""
    from docteur.make import make, parse_date
    from unikernel import host

    subprocess.run(["make", "-s", "-C", str(REPO / "unikernel")], check=True, capture_output=True)
    with tempfile.TemporaryDirectory(prefix="bench-9p-") as scratch:
        work = Path(scratch)
        image = work / "tree.img"
        make(str(source or tree), image, date=parse_date("2020-10-10T08:00:00+00:00"), quiet=True)
        ours_runs, peer_runs = [], []
        with host.docteur_serve(image) as sock, _diod(tree.resolve(), work / "diod.sock"):
            for _ in range(BOOTS):  # alternate, so that a busier moment does not favour one side
                ours_runs.append(_measure(sock))
                peer_runs.append(_measure(work / "diod.sock", aname=str(tree.resolve())))
    ours, peer = _best(ours_runs), _best(peer_runs)
    if ours.bytes != peer.bytes:
        raise RuntimeError(f"the servers gave different trees: {ours.bytes} vs {peer.bytes} bytes")
    label = f"{name or tree.name}, {ours.bytes / 1e6:.1f} MB, guest kernel client"
    ms = 1e3
    return [
        Row(f"9P: read every file ({label})", ours.read, peer.read, "s", "diod", limit=1.0),
        Row(f"9P: stat a small file ({label})", ours.stat * ms, peer.stat * ms, "ms", "diod", limit=2.0),
        Row(
            f"9P: open, read 1 byte, close ({label})", ours.open * ms, peer.open * ms, "ms", "diod", limit=2.0
        ),
    ]


def main(argv: list[str]) -> None:
    from bench.corpora import generated, given

    corpus = given(argv[0]) if argv else generated("book")
    print(render(rows(corpus.tree, corpus.repo, corpus.name)))


if __name__ == "__main__":
    main(sys.argv[1:])
