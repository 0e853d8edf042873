"""What every part of the Redis store shares: the key prefix, a blocking client with bounded waits, and the
integer position of a record in a stream.

A record's position (the `seq` the controller, the feedback and the checkpoints use) is made of its stream
entry's id and its index in the entry: `(ms << 32) | (n << 12) | index` for entry id `ms-n`, so positions grow
in stream order exactly as SQLite's seq does.
Usage: redis = client(url); pos = position(b"1765000000123-7", 42); entry_of(pos) == ("1765000000123-7", 42)
"""

from __future__ import annotations

from redis import Redis

PREFIX = "outrider:"
TIMEOUT_S = 2.0
"""Socket and connect timeout of the store's connections (threads wait at most this long on a dead Redis)."""


def client(url: str, timeout_s: float = TIMEOUT_S) -> Redis:
    """A blocking client with bounded waits (a thread never hangs on a dead Redis)."""
    return Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)


def position(entry_id: bytes | str, index: int) -> int:
    """The integer position of record `index` of stream entry `entry_id` (`ms-n`)."""
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, n = text.split("-")
    return (int(ms) << 32) | (int(n) << 12) | index


def entry_of(pos: int) -> tuple[str, int]:
    """Inverse of `position`: (entry id, index)."""
    return f"{pos >> 32}-{(pos >> 12) & 0xFFFFF}", pos & 0xFFF
