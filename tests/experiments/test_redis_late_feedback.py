"""Feedback after its outcome's request-id index expired (a real redis-server, the index shortened to a
second): the token says when it was issued, so a genuine token older than any outcome stays findable gets
422 `feedback_late` — the answer, code and body the SQLite store gives for feedback that comes too late —
while an id nobody vouches for stays 403 and a fresh token for an unknown id stays 404. The reward keys
vanish with the index."""

from __future__ import annotations

import asyncio
import base64
import hmac
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from multidict import CIMultiDict, CIMultiDictProxy
from redis import Redis

from experiments.builder import Analysis, Canary, ExperimentDoc, Goal, Guardrail, Variant
from experiments.config import load_experiment_text
from experiments.model import Experiment
from experiments.outcome import OutcomeRecord
from experiments.redis_feedback import RedisFeedbackStore, index_key
from experiments.redis_store import RedisOutcomeStore
from experiments.sink import OutcomeSink
from experiments.sqlite_store import SqliteOutcomeStore
from experiments.stores import FeedbackStore
from loadtests.redis_server import RedisServer, running_redis
from proxy.control.router import Router
from proxy.dataplane.errors import OutriderError, error_body
from proxy.dataplane.exchange import Exchange, Inbound
from proxy.feedback import PATH, Feedback, LateFeedback, UnknownRequest
from proxy.feedback.token import FeedbackTokens
from proxy.telemetry.metrics import Metrics
from tests.support.wait import wait_until

NAME = "rw"
KEY = b"k" * 32
GRACE_S = 1
"""The index outlives the 1 s window by this much here (60 s in production)."""


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    with running_redis(tmp_path / "redis" / "redis.log") as server:
        yield server


def rewarded() -> Experiment:
    analysis = Analysis(
        (Guardrail("latency_gmean", 1.5),),
        (Goal("reward_mean", "increase", range=(0.0, 1.0)),),
        interval="200ms",
        feedback_window="1s",
    )
    variants = (Variant.stable("http://127.0.0.1:1"), Variant.candidate("http://127.0.0.1:2"))
    doc = ExperimentDoc(NAME, variants, Canary((50,)), prefix="/v2", analysis=analysis)
    return load_experiment_text(doc.yaml(), f"{NAME}.yaml")


def outcome(rid: str) -> OutcomeRecord:
    return OutcomeRecord(rid, time.time(), NAME, "candidate", 0.5, 200, None, 1.0, 1.0, None)


def post(rid: str, token: str) -> Exchange:
    body = orjson.dumps({"request_id": rid, "reward": 1.0, "token": token})
    headers = CIMultiDictProxy(CIMultiDict[str]())
    return Exchange(Inbound("POST", PATH, headers, body, "127.0.0.1", time.time(), 0.0, "post"))


async def answer(stage: Feedback, rid: str, token: str) -> tuple[int, dict[str, str]]:
    try:
        reply = await stage(post(rid, token))
    except OutriderError as err:
        return err.status, orjson.loads(error_body(err))
    return reply.status, orjson.loads(reply.body)


def stage_of(store: FeedbackStore, sink: OutcomeSink, tokens: FeedbackTokens, *, shared: bool) -> Feedback:
    router = Router([rewarded()], time.time())
    return Feedback(store, sink, router, Metrics(), tokens, shared=shared, index_grace_s=GRACE_S)


async def test_feedback_after_the_index_expired_is_late_as_on_sqlite(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    window = {NAME: 1.0}.get
    outcomes = RedisOutcomeStore(redis_server.url, reward_window=window, index_grace_s=GRACE_S)
    raw = Redis.from_url(redis_server.url)
    tokens = FeedbackTokens(KEY)
    sink = OutcomeSink(outcomes)  # never started: nothing pending in this process
    stage = stage_of(RedisFeedbackStore(redis_server.url), sink, tokens, shared=True)
    outcomes.write([outcome("early"), outcome("late")])
    token = {rid: tokens.issue(rid, NAME, None, None) for rid in ("early", "late", "never")}
    assert (await answer(stage, "early", token["early"]))[0] == 200
    assert raw.keys("outrider:reward:*") != []  # the reward's key, kept while the index lasts
    await wait_until(lambda: raw.exists(index_key("late")) == 0, timeout=10.0)  # window + grace, in real time
    issued = tokens.issued_at(token["late"], "late", None)
    assert issued is not None
    assert time.time() - issued > 1.0 + GRACE_S  # so the token is older than any index lasts
    status, body = await answer(stage, "late", token["late"])
    assert (status, body["code"]) == (LateFeedback.status, "feedback_late") == (422, "feedback_late")
    assert "window is closed" in body["detail"]
    assert raw.keys("outrider:reward:*") == []  # vanished on its own, with the index
    assert raw.keys("outrider:rewards:*") == []  # the old never-expiring hash is not written
    # an old token the stage cannot trust to be genuine: 403 as before; an unknown id, fresh token: 404
    assert (await answer(stage, "late", token["early"]))[0] == 403
    fresh = tokens.issue("never", NAME, None, None)
    assert (await answer(stage, "never", fresh))[0] == UnknownRequest.status == 404
    # the embedded store answers feedback that comes too late with the same status, code and body keys
    sqlite = SqliteOutcomeStore(tmp_path / "outrider.db")
    sqlite.write([outcome("late")])
    embedded = stage_of(sqlite, OutcomeSink(sqlite), tokens, shared=False)
    await asyncio.sleep(1.1)  # its record is past the 1 s window
    sq_status, sq_body = await answer(embedded, "late", token["late"])
    assert (sq_status, sq_body["code"], sorted(sq_body)) == (status, body["code"], sorted(body))
    for closing in (stage, embedded):
        closing.close()
    raw.close()
    outcomes.close()
    sqlite.close()


def v1_token(tokens: FeedbackTokens, rid: str) -> str:
    """A token as issued before tokens carried their time (TAG = 16 bytes of HMAC over the id alone)."""
    tag = hmac.new(
        KEY, b"outrider-feedback-v1 request\x00" + len(rid).to_bytes(4, "big") + rid.encode(), "sha256"
    )
    head = base64.urlsafe_b64encode(tag.digest()[:16]).rstrip(b"=").decode()
    return head + "." + tokens.issue(rid, NAME, None, None).partition(".")[2]


async def test_a_token_of_the_earlier_format_stays_unknown_once_the_index_expired(
    redis_server: RedisServer,
) -> None:
    tokens = FeedbackTokens(KEY)
    sink = OutcomeSink(RedisOutcomeStore(redis_server.url))
    stage = stage_of(RedisFeedbackStore(redis_server.url), sink, tokens, shared=False)
    old = v1_token(tokens, "gone")  # genuine, but says nothing of when it was issued
    status, body = await answer(stage, "gone", old)
    assert (status, body["code"]) == (404, "unknown_request")
    stage.close()
