"""What a 9P server accepts: message sizes, fids, connections, requests in flight, deadlines."""

from __future__ import annotations

from dataclasses import dataclass

MIN_MSIZE = 4096  # Linux refuses less, and a stat record must fit


@dataclass(frozen=True)
class Limits:
    """What one server accepts; the defaults suit the Linux client walking large trees."""

    max_msize: int = 1 << 20
    max_fids: int = 1 << 18  # Linux keeps a fid per cached dentry
    max_total_fids: int = 1 << 19  # over all connections: ~250 bytes each, so ~130 MiB at most
    max_connections: int = 64
    max_outstanding: int = 64  # requests in flight per connection
    max_bulk: int = 2  # reads (replies up to msize) built or waiting for the client, per connection
    # Deadlines in seconds (0: none). Tversion is the first thing any client says, but a QEMU guest's
    # chardev connects before the guest has booted, so the handshake allows a slow boot under TCG.
    version_timeout: float = 60.0
    # Requests are small (a Twalk of 16 names is the largest a read-only server takes): a client writes a
    # frame at once, so one still arriving after 10 s is a dribbler holding a place.
    frame_timeout: float = 10.0
    # A session holding no fid has nothing to lose; a mounted client always holds its root fid, so this
    # never closes a mount, however quiet.
    idle_timeout: float = 60.0
