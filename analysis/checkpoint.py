"""A controller's checkpoint: how far it read and its statistics' whole state, so that a new leader continues
with the same e-values without reading the stream again.

Usage:
    points = Checkpoints(store, key)            # store: save_checkpoint/load_checkpoint (blocking)
    points.save(name, Mark(outcome_seq, feedback_seq), looker)
    restored = points.load(name, experiment)     # (Mark, Looker) or None: then replay from the start
The looker (judge, counts, look schedule) is pickled and compressed, then signed with HMAC-SHA256: a pickle
runs code when loaded, so one is loaded only with a valid signature under `key` (a secret every replica
shares: the feedback secret, `feedback.secretFile`). A checkpoint made with another key, for another
experiment definition, or damaged is ignored (logged), and the controller replays the stream from the
start instead: its looks depend on the record count alone, so it reaches the same decisions.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import pickle
import zlib
from dataclasses import dataclass
from typing import Protocol

from analysis.verdict import Looker
from experiments.model import Experiment

log = logging.getLogger(__name__)
MAGIC = b"ORCK1"
DIGEST = 32


@dataclass(frozen=True, slots=True)
class Mark:
    """Positions read up to (the outcome stream, the feedback)."""

    outcome_seq: int
    feedback_seq: int


class CheckpointStore(Protocol):
    """Where checkpoints are kept (experiments.redis_state.RedisStateStore; writes are fenced)."""

    def save_checkpoint(self, experiment: str, blob: bytes, consumed: tuple[int, int] = (0, 0)) -> None:
        """Store (raises when the writer no longer leads); `consumed`: the mark's positions, up to which the
        store may trim its streams (less its retention)."""
        ...

    def load_checkpoint(self, experiment: str) -> bytes | None:
        """The last one, or None."""
        ...


def encode(mark: Mark, looker: Looker, key: bytes) -> bytes:
    """Signed, compressed pickle of (mark, looker)."""
    body = zlib.compress(pickle.dumps((mark, looker), protocol=pickle.HIGHEST_PROTOCOL), 1)
    return MAGIC + hmac.new(key, body, hashlib.sha256).digest() + body


def decode(blob: bytes, key: bytes, experiment: Experiment) -> tuple[Mark, Looker] | None:
    """(mark, looker) if `blob` is signed with `key` and made for this very experiment definition."""
    if not blob.startswith(MAGIC):
        return None
    sig, body = blob[len(MAGIC) : len(MAGIC) + DIGEST], blob[len(MAGIC) + DIGEST :]
    if not hmac.compare_digest(sig, hmac.new(key, body, hashlib.sha256).digest()):
        return None
    mark, looker = pickle.loads(zlib.decompress(body))  # signed by a replica holding `key`
    if not isinstance(mark, Mark) or not isinstance(looker, Looker) or looker.experiment != experiment:
        return None
    return mark, looker


class Checkpoints:
    """Saves and loads the checkpoints of the controllers of one leader."""

    def __init__(self, store: CheckpointStore, key: bytes) -> None:
        self.store, self.key = store, key

    def save(self, name: str, mark: Mark, looker: Looker) -> int:
        """Store a checkpoint; its size in bytes."""
        blob = encode(mark, looker, self.key)
        self.store.save_checkpoint(name, blob, (mark.outcome_seq, mark.feedback_seq))
        return len(blob)

    def load(self, name: str, experiment: Experiment) -> tuple[Mark, Looker] | None:
        """The last checkpoint of `name` if it can be used (else None, logged)."""
        blob = self.store.load_checkpoint(name)
        if blob is None:
            return None
        try:
            restored = decode(blob, self.key, experiment)
        except Exception:  # a damaged or foreign blob: replay instead
            log.exception("checkpoint of %s unreadable", name)
            restored = None
        if restored is None:
            log.warning("checkpoint of %s not usable (other key or definition): replaying the stream", name)
        return restored
