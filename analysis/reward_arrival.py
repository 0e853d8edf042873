"""Feedback maturity and arrival: which rewards may count, and whether they arrive evenly between the arms.

Usage:
    rewards = RewardClock(window_s=3600)
    rewards.offer(records_with_reward)            # as they are read (live) or met in the export (replay)
    matured = rewards.advance(block)              # after each block of outcomes: the rewards now mature
    hold = arrival.hold_reason()                  # ArrivalMonitor: None, or why promotion must wait

A reward counts only once the feedback window of its request has closed, measured on the records' own clock
(the newest outcome's timestamp, plus a one-second grace for the store's write delay). Live and replay then
fold every reward at the same block. Counting rewards on arrival would let the early-responding part of an arm
speak for all of it. An arm whose matured requests get feedback at a different rate from the other's is a data
problem (a broken client, a steered one): the rewards' arm counts are tested against the matured requests'
split with the sample-ratio Bayes factor, and an imbalance holds promotion.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Sequence

from analysis.srm import SRM_ALPHA, srm_flagged, srm_log_bf
from experiments.outcome import OutcomeRecord

GRACE_S = 1.0
"""Seconds added to the window: feedback is stored up to one writer flush after it was accepted."""


class RewardClock:
    """Holds rewards until their request's feedback window has closed on the records' clock."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self.now = float("-inf")
        self._heap: list[tuple[float, int, OutcomeRecord]] = []
        self._order = itertools.count()

    def offer(self, records: Sequence[OutcomeRecord]) -> None:
        """Rewards known now (records with `reward` set)."""
        for r in records:
            if r.reward is not None:
                heapq.heappush(self._heap, (r.ts + self.window_s + GRACE_S, next(self._order), r))

    def advance(self, block: Sequence[OutcomeRecord]) -> list[OutcomeRecord]:
        """Move the clock to the newest record of `block`; return the rewards that matured, oldest first."""
        if block:
            self.now = max(self.now, max(r.ts for r in block))
        out = []
        while self._heap and self._heap[0][0] <= self.now:
            out.append(heapq.heappop(self._heap)[2])
        return out

    @property
    def cutoff(self) -> float:
        """Requests at or before this timestamp have matured."""
        return self.now - self.window_s - GRACE_S


class ArrivalMonitor:
    """Matured requests and rewards per arm; flags an uneven feedback arrival rate."""

    def __init__(self) -> None:
        self._blocks: deque[tuple[float, int, int]] = deque()
        self.matured = [0, 0]
        self.rewards = [0, 0]

    def add_block(self, newest_ts: float, n_stable: int, n_candidate: int) -> None:
        """Analysed requests of one block (both arms), with its newest timestamp."""
        if n_stable or n_candidate:
            self._blocks.append((newest_ts, n_stable, n_candidate))

    def add_rewards(self, n_stable: int, n_candidate: int) -> None:
        """Matured rewards folded into the statistics."""
        self.rewards[0] += n_stable
        self.rewards[1] += n_candidate

    def advance(self, cutoff: float) -> None:
        """Count the blocks whose every request has matured."""
        while self._blocks and self._blocks[0][0] <= cutoff:
            _, a, b = self._blocks.popleft()
            self.matured[0] += a
            self.matured[1] += b

    def log_bf(self) -> float:
        """Sample-ratio Bayes factor of the rewards' arms against the matured requests' split."""
        n = self.matured[0] + self.matured[1]
        if n == 0 or 0 in self.matured or sum(self.rewards) == 0:
            return 0.0
        share = self.matured[1] / n
        return float(srm_log_bf(self.rewards, [1.0 - share, share]))

    def hold_reason(self) -> str | None:
        """Why promotion must wait for the feedback (None when arrival looks even)."""
        log_bf = self.log_bf()
        if not srm_flagged(log_bf):
            return None
        rates = [r / m if m else 0.0 for r, m in zip(self.rewards, self.matured, strict=True)]
        return (
            f"feedback arrival differs between arms: {rates[0]:.3g} (stable) vs {rates[1]:.3g} (candidate) "
            f"rewards per matured request, Bayes factor e^{log_bf:.1f} ≥ 1/{SRM_ALPHA:g}; no promotion"
        )
