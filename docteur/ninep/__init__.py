"""A read-only 9P server (9P2000.L, 9P2000.u, 9P2000) over docteur images; ``docteur-serve`` runs it.

The server and its codec depend on the standard library only, so they run inside small guests.
"""

from __future__ import annotations


def serve_stdio(image: str, *, layout: str = "tree") -> None:
    """Serve ``image`` as one 9P session on stdin/stdout (a pipe, a socket or a tty such as /dev/hvc0)."""
    from docteur.ninep.cli import run
    from docteur.ninep.listen import Listen

    run(image, Listen("stdio"), layout=layout)
