"""The decision webhook: POSTs each controller decision as JSON to one configured URL, off the request path.

Usage:
    hook = Webhook("https://ops.example/outrider", secret=b"k"); hook.start()
    hook.offer(decision_event(experiment, decision, change, time.time()))   # never waits
    await hook.close(deadline_s=3.0)

One owned sender task serves a bounded queue (`plumbing.workqueue`: a full queue drops the event and
counts it). An attempt that fails by connect error, timeout, reset, 5xx or 429 is retried with exponential
backoff and jitter; other 4xx are final. Counters obey
`offered == delivered + failed + dropped + shutdown + pending` at all times. With a secret,
`X-Outrider-Signature: sha256=HEX` is the HMAC-SHA256 of the exact body bytes; `id` lets receivers drop the
duplicates that a retry after a lost answer can cause.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import logging
import random
import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiohttp
import orjson

from experiments.state import Phase, planned_weights
from plumbing.http_client import http_session
from plumbing.workqueue import WorkQueue
from proxy.runtime.tasks import TaskGroup

if TYPE_CHECKING:
    from analysis.verdict import Decision
    from experiments.model import Experiment

log = logging.getLogger(__name__)
SIGNATURE_HEADER = "X-Outrider-Signature"
RETRIED = frozenset({"connect_error", "timeout", "reset", "http_5xx", "http_429"})
WEBHOOK_DRAIN_S = 3.0
"""Longest a shutdown waits for queued decisions to be delivered (the receiver may be down)."""
DELIVERY_RESULTS = ("delivered", "failed", "dropped", "shutdown")
ATTEMPT_RESULTS = (
    "ok",
    "connect_error",
    "timeout",
    "reset",
    "http_5xx",
    "http_429",
    "http_4xx",
    "http_other",
)


@dataclass(frozen=True, slots=True)
class WebhookLimits:
    """Bounds of the sender (defaults: queue 100, 5 attempts 0.5 s → 8 s apart, 2 s per attempt)."""

    queue: int = 100
    attempts: int = 5
    backoff_s: float = 0.5
    """Delay before the second attempt; doubles per attempt up to `backoff_max_s`, then jittered."""
    backoff_max_s: float = 8.0
    timeout_s: float = 2.0


def check_url(url: str) -> str:
    """`url` if it is an absolute http(s) URL with a host, else ValueError."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"URL {url!r}: expected http(s)://HOST[:PORT]/PATH")
    return url


def decision_event(
    experiment: Experiment, decision: Decision, change: tuple[Phase, int, Any] | None, at: float
) -> dict[str, Any]:
    """The JSON body for one decision: what was decided, why, where, and the split it leads to."""
    phase, step = (change[0], change[1]) if change is not None else (None, decision.step)
    return {
        "id": uuid.uuid4().hex,
        "type": "decision",
        "experiment": experiment.name,
        "decision": decision.kind,
        "reasons": list(decision.reasons),
        "at": at,
        "step": decision.step,
        "phase": phase,
        "next_step": step,
        "weights": planned_weights(experiment, phase, step) if phase is not None else None,
        "records": decision.records,
        "candidate_requests": decision.candidate_requests,
    }


def backoff(attempt: int, limits: WebhookLimits, rng: random.Random) -> float:
    """Seconds to wait after failed attempt number `attempt` (1-based): equal jitter over the capped doubling,
    so replicas that failed together do not retry together, yet the wait never falls below half."""
    ceiling = min(limits.backoff_max_s, limits.backoff_s * 2.0 ** (attempt - 1))
    return ceiling / 2 + rng.random() * ceiling / 2


class Webhook:
    """A bounded queue of JSON events and the one task that delivers them."""

    def __init__(
        self,
        url: str,
        secret: bytes | None = None,
        limits: WebhookLimits | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.url, self.secret = check_url(url), secret
        self.limits = limits or WebhookLimits()
        self.rng = rng or random.Random()
        self.deliveries: Counter[str] = Counter()
        """Events by final result: delivered, failed (gave up), dropped (queue full), shutdown (not sent)."""
        self.attempts: Counter[str] = Counter()
        """HTTP attempts by result (ok, connect_error, timeout, reset, http_5xx, http_429, http_4xx, ...)."""
        self._queue = WorkQueue[bytes](self.limits.queue, full="dropped", counts=self.deliveries)
        self._tasks = TaskGroup()

    @property
    def offered(self) -> int:
        """Events offered (delivered, failed, dropped, shutdown or pending)."""
        return self._queue.offered

    @property
    def pending(self) -> int:
        """Events queued or being delivered."""
        return self._queue.pending

    def offer(self, event: Mapping[str, Any]) -> bool:
        """Queue `event` without waiting; False (counted as dropped, or shutdown) when full or closing."""
        return self._queue.offer(orjson.dumps(event))

    def start(self) -> None:
        """Spawn the one sender task (owned here, so close() can bound how long it may keep sending)."""
        self._tasks.spawn(self.run(), name="webhook-sender")

    async def run(self) -> None:
        """Deliver queued events one at a time until close()."""
        async with http_session(timeout_s=self.limits.timeout_s) as session:
            await self._queue.serve(functools.partial(self._deliver_all, session))

    async def _deliver_all(self, session: aiohttp.ClientSession, bodies: list[bytes]) -> None:
        for body in bodies:  # one (the queue's batches are of one)
            try:
                delivered = await self._deliver(session, body)
                self.deliveries["delivered" if delivered else "failed"] += 1
            except asyncio.CancelledError:
                self.deliveries["shutdown"] += 1
                raise
            except Exception:  # a bug here must not stop later deliveries
                log.exception("webhook delivery failed")
                self.deliveries["failed"] += 1

    async def _deliver(self, session: aiohttp.ClientSession, body: bytes) -> bool:
        headers = {"Content-Type": "application/json", "User-Agent": "outrider-webhook"}
        if self.secret is not None:
            digest = hmac.new(self.secret, body, hashlib.sha256).hexdigest()
            headers[SIGNATURE_HEADER] = f"sha256={digest}"
        for attempt in range(1, self.limits.attempts + 1):
            result = await self._attempt(session, body, headers)
            self.attempts[result] += 1
            if result == "ok":
                return True
            if result not in RETRIED or attempt == self.limits.attempts:
                log.warning("webhook gave up after %d attempt(s): %s", attempt, result)
                return False
            await asyncio.sleep(backoff(attempt, self.limits, self.rng))
        return False  # pragma: no cover - the loop always returns (attempts >= 1)

    async def _attempt(self, session: aiohttp.ClientSession, body: bytes, headers: dict[str, str]) -> str:
        try:
            async with session.post(self.url, data=body, headers=headers, allow_redirects=False) as resp:
                status = resp.status
        except TimeoutError:
            return "timeout"
        except aiohttp.ClientConnectorError:
            return "connect_error"
        except (aiohttp.ClientError, ConnectionError):
            return "reset"
        if 200 <= status < 300:
            return "ok"
        if status >= 500:
            return "http_5xx"
        if status == 429:
            return "http_429"
        return "http_4xx" if status >= 400 else "http_other"

    async def close(self, deadline_s: float) -> None:
        """Take no more events; deliver queued ones for up to `deadline_s`; cancel and count the rest."""
        started = len(self._tasks) > 0  # no sender: nothing would deliver what is queued, so no wait
        await self._queue.close(deadline_s if started else 0.0, cancel=True)
        await self._tasks.drain(timeout=deadline_s)  # the sender has stopped: let its session close
