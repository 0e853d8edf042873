"""`POST /outrider/v1/feedback {"request_id", "reward", "token"}`: join a reward to a stored outcome.

`token` is the `x-outrider-feedback-token` of the request's response (proxy.feedback.token; only experiments
with a `reward_mean` goal issue one). Checks, in this order: malformed body → 400; missing or wrong token
→ 403 `bad_feedback_token` (checked before the id is looked up: an unknown id with a forged token is a 403
too, so nobody without a token learns which ids exist; with JWT auth on, the token also binds the subject
that made the request); unknown id → 404, unless the token was issued longer ago than the longest feedback
window in force plus INDEX_GRACE_S: then 422 `feedback_late` (the Redis store's request-id index of that
outcome expired; on SQLite the outcome would be found, and be late); a reward that is not a finite number
within the goal's `range` → 422; duplicate → 409; after the experiment's feedback window → 422 (stored as
late, counted, never used by the statistics); the store unreachable (Redis) → 503 `unavailable`, retry.
A terminal stage: it runs behind the same edge, auth and rate limits as traffic. With a Redis store any
replica takes the feedback of a request any replica answered (experiments.redis_feedback), and a reward is
stored once for the fleet.
Usage: stage = Feedback(open_feedback(...), sink, router, metrics, tokens); reply = await stage(exchange)
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

import orjson
from multidict import CIMultiDict

from experiments.model import Experiment
from experiments.outcome import OutcomeRecord
from experiments.redis_feedback import INDEX_GRACE_S
from experiments.sink import OutcomeSink
from experiments.stores import FeedbackStore, StoreUnavailable
from proxy.control.router import Router
from proxy.dataplane.errors import BadFeedbackToken, BadRequest, OutriderError, Unavailable
from proxy.dataplane.exchange import Exchange, Reply
from proxy.feedback.token import FeedbackTokens, reward_range, subject_of
from proxy.telemetry.metrics import Metrics

PATH = "/outrider/v1/feedback"
DEFAULT_WINDOW_S = 3600.0
DEFAULT_RANGE = (0.0, 1.0)
"""The reward range of an experiment that is no longer configured (the goal's default)."""
WRONG_TOKEN = (
    "wrong token: not the x-outrider-feedback-token of this request's response"
    " (with JWT auth on, only the subject that made the request may post its feedback)"
)
T = TypeVar("T")


class UnknownRequest(OutriderError):
    """No outcome with that request id."""

    status = 404
    code = "unknown_request"


class DuplicateFeedback(OutriderError):
    """That request already has feedback."""

    status = 409
    code = "duplicate_feedback"


class LateFeedback(OutriderError):
    """Feedback after the experiment's window closed."""

    status = 422
    code = "feedback_late"


class RewardOutOfRange(OutriderError):
    """A reward that is not a finite number within the `range` of the experiment's reward goal."""

    status = 422
    code = "reward_out_of_range"


@dataclass(frozen=True, slots=True)
class Post:
    """One feedback post, as sent."""

    request_id: str
    reward: float
    """Not yet checked: NaN and ±inf (JSON's non-standard constants, huge numbers) are refused later."""
    token: str | None


def _load(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as err:
        try:  # NaN, Infinity and numbers beyond a double are a bad reward (422), not a malformed body
            return json.loads(body)
        except (ValueError, RecursionError):
            raise BadRequest(f"body is not JSON: {err}") from None


def _number(value: int | float) -> float:
    try:
        return float(value)
    except OverflowError:  # an integer beyond a double
        return math.inf


def parse(body: bytes) -> Post:
    """The post from the JSON body, or BadRequest saying what is wrong (the token and the reward's value are
    checked later)."""
    doc = _load(body)
    if not isinstance(doc, dict):
        raise BadRequest("body must be a JSON object")
    rid, reward, token = doc.get("request_id"), doc.get("reward"), doc.get("token")
    if not isinstance(rid, str) or not rid:
        raise BadRequest("request_id must be a non-empty string")
    if isinstance(reward, bool) or not isinstance(reward, int | float):
        raise BadRequest("reward must be a number")
    return Post(rid, _number(reward), token if isinstance(token, str) else None)


class Feedback:
    """Terminal stage for the feedback endpoint."""

    def __init__(
        self,
        store: FeedbackStore,
        sink: OutcomeSink,
        router: Router,
        metrics: Metrics,
        tokens: FeedbackTokens,
        clock: Callable[[], float] = time.time,
        *,
        shared: bool = False,
        index_grace_s: float = INDEX_GRACE_S,
    ) -> None:
        self.store, self.sink, self.router, self.metrics, self.clock = store, sink, router, metrics, clock
        self.tokens = tokens
        self.shared = shared
        """Other processes write outcomes to the same store (proxy.fleet workers, Redis replicas): a request
        answered by one of them may still be in its queue, which this process cannot see."""
        self.index_grace_s = index_grace_s
        """How long after a window an outcome stays findable at least (the Redis index's grace): a token
        older than the longest window and this, whose outcome is not found, is late (422), not unknown."""
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="feedback-db")

    async def _db(self, fn: Callable[..., T], *args: Any) -> T:
        try:
            return await asyncio.get_running_loop().run_in_executor(self._worker, fn, *args)
        except StoreUnavailable as err:
            self.metrics.feedback.labels("unavailable").inc()
            raise Unavailable(f"the outcome store cannot be reached now ({err}); try again") from None

    async def __call__(self, ex: Exchange) -> Reply:
        """Validate, check the token, find the outcome (waiting briefly for one still in the queue), check
        the reward, store it."""
        if ex.inbound.method != "POST":
            raise BadRequest("feedback must be POSTed")
        post = parse(ex.inbound.body)
        rid, token, subject = post.request_id, post.token, subject_of(ex.principal)
        if token is None:
            self._refuse_token("no token: send the x-outrider-feedback-token of the request's response")
        issued = self.tokens.issued_at(token, rid, subject)
        if issued is None:
            self._refuse_token(WRONG_TOKEN)
        seq, record = await self._found(rid, issued)
        if not self.tokens.matches(token, rid, record.experiment, record.unit, subject):
            self._refuse_token(WRONG_TOKEN)
        expose, (low, high) = self._experiment_facts(record)
        if not (math.isfinite(post.reward) and low <= post.reward <= high):
            self.metrics.feedback.labels("out_of_range").inc()
            raise RewardOutOfRange(f"reward must be a finite number within [{low:g}, {high:g}]")
        now = self.clock()
        late = now - record.ts > self._window(record)
        if not await self._db(self.store.add_feedback, seq, record, post.reward, now, late):
            self.metrics.feedback.labels("duplicate").inc()
            raise DuplicateFeedback(f"request_id {rid!r} already has feedback")
        self.metrics.feedback.labels("late" if late else "accepted").inc()
        if late:
            raise LateFeedback(
                f"feedback arrived {now - record.ts:.0f}s after the request; the window is closed"
            )
        answer: dict[str, str] = {"request_id": rid, "experiment": record.experiment}
        if expose:  # `spec.exposeVariant: false` hides the arm here too
            answer["variant"] = record.variant
        return Reply(200, CIMultiDict({"Content-Type": "application/json"}), orjson.dumps(answer))

    def _refuse_token(self, detail: str) -> NoReturn:
        self.metrics.feedback.labels("forbidden").inc()
        raise BadFeedbackToken(detail)

    def _experiment_facts(self, record: OutcomeRecord) -> tuple[bool, tuple[float, float]]:
        """(whether the variant may be shown, the reward range) of the record's experiment."""
        try:
            experiment = self.router.get(record.experiment).experiment
        except KeyError:
            return False, DEFAULT_RANGE
        return experiment.expose_variant, reward_range(experiment) or DEFAULT_RANGE

    async def _found(self, rid: str, issued: int) -> tuple[int, OutcomeRecord]:
        """The outcome of `rid`; LateFeedback if it cannot be found and its token (issued at `issued`, 0:
        unknown) is older than any outcome is kept findable; else UnknownRequest."""
        age = self.clock() - issued if issued > 0 else 0.0
        too_old = age > self._longest_window() + self.index_grace_s
        found = await self._find(rid, tries=1 if too_old else 20)
        if found is not None:
            return found
        if too_old:  # its outcome's request-id index (Redis) expired: the window closed long ago
            self.metrics.feedback.labels("late").inc()
            raise LateFeedback(f"feedback arrived {age:.0f}s after the request; the window is closed")
        self.metrics.feedback.labels("unknown").inc()
        raise UnknownRequest(f"no outcome recorded for request_id {rid!r}")

    def _longest_window(self) -> float:
        """The longest feedback window of the experiments in force that take rewards (a token does not say
        which experiment it is for until its outcome is found)."""
        windows = [
            self._window_of(live.experiment) for live in self.router.all() if reward_range(live.experiment)
        ]
        return max(windows, default=DEFAULT_WINDOW_S)

    async def _find(self, rid: str, tries: int) -> tuple[int, OutcomeRecord] | None:
        for _ in range(tries):  # a just-answered request may still be queued: wait for a few flushes (≤ 1 s)
            found = await self._db(self.store.find, rid)
            if found is not None or (self.sink.pending == 0 and not self.shared):
                return found
            await asyncio.sleep(0.05)
        return None

    def _window(self, record: OutcomeRecord) -> float:
        try:
            return self._window_of(self.router.get(record.experiment).experiment)
        except KeyError:
            return DEFAULT_WINDOW_S

    @staticmethod
    def _window_of(experiment: Experiment) -> float:
        analysis = experiment.analysis
        return analysis.feedback_window_s if analysis is not None else DEFAULT_WINDOW_S

    def close(self) -> None:
        """Stop the worker thread."""
        self._worker.shutdown(wait=True)
