"""Request ids for requests that arrive without a sane `x-request-id`: a per-process random prefix and a
counter, 32 hex characters like `uuid4().hex`.

Usage: ids = RequestIds(); rid = ids.next()

Why not `uuid4`: it reads 16 bytes from the OS per call (a syscall and ~1.5 µs); this is one string format.
What it guarantees: unique within the process (the counter) and, with 64 random bits per process start,
across restarts and replicas for any practical number of processes. What it does not: secrecy — whoever
sees one id can guess the ids of this process' later requests. Nothing relies on that: ids are for logs and
for joining outcomes, and feedback is authorised by an HMAC token (proxy.feedback.token), not by the id.
"""

from __future__ import annotations

import secrets


class RequestIds:
    """Makes request ids: `PPPPPPPPPPPPPPPPCCCCCCCCCCCCCCCC` (random prefix, then the counter)."""

    __slots__ = ("_count", "prefix")

    def __init__(self, prefix: str | None = None) -> None:
        self.prefix = prefix if prefix is not None else secrets.token_hex(8)
        self._count = 0

    def next(self) -> str:
        """A new id."""
        # to_bytes().hex(): 76 ns compiled, against 405 for the same digits from an f-string's `016x`
        self._count = count = (self._count + 1) & 0xFFFF_FFFF_FFFF_FFFF
        return self.prefix + count.to_bytes(8, "big").hex()
