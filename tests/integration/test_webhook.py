"""The decision webhook end to end: a real outrider rolls back a candidate that answers 500 and POSTs the
decision, signed, to a receiver that refuses twice with 503 then accepts; the counters say so. With a
receiver that never answers, the sidecar still stops at the webhook's drain deadline."""

from __future__ import annotations

import hashlib
import hmac
import time
from pathlib import Path

import aiohttp
import orjson

from proxy.control.webhook import WEBHOOK_DRAIN_S
from tests.integration.conftest import OutriderFactory
from tests.support.http import scrape
from tests.support.ops import drive_until_decided, ops_yaml
from tests.support.procs import Proc
from tests.support.receiver import Receiver, serving

SECRET = "webhook-secret-0123456789"


async def test_a_rollback_is_posted_signed_and_retried_after_503s(
    upstreams: tuple[Proc, Proc],
    outrider: OutriderFactory,
    tmp_path: Path,
) -> None:
    secret_file = tmp_path / "webhook.secret"
    secret_file.write_text(SECRET + "\n")
    async with serving(Receiver(statuses=(503, 503))) as (hook, url):
        flags = ("--webhook-url", url, "--webhook-secret-file", str(secret_file), "--drain-delay", "0")
        proxy = outrider(ops_yaml(upstreams[0].url), args=flags)
        state = await drive_until_decided(proxy, "ops")
        assert state["phase"] == "rolled_back"
        await hook.seen(3)  # backoff 0.25-0.5 s, then 0.5-1 s

    bodies = {body for _, body, _ in hook.calls}
    assert len(hook.calls) == 3
    assert len(bodies) == 1  # every retry sends the same bytes (and the same id)
    body = bodies.pop()
    signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert {sig for _, _, sig in hook.calls} == {signature}
    event = orjson.loads(body)
    decision = state["state"]["history"][-1]
    assert event["experiment"] == "ops"
    assert event["decision"] == decision["decision"] == "ROLLBACK"
    assert event["reasons"] == decision["reasons"]
    assert (event["phase"], event["step"], event["next_step"]) == ("rolled_back", 0, 0)
    assert event["weights"] == {"stable": 100.0}
    assert event["candidate_requests"] == decision["at_candidate_requests"]
    assert abs(event["at"] - decision["at"]) < 1.0
    assert len(event["id"]) == 32

    async with aiohttp.ClientSession() as session:
        samples = await scrape(session, proxy.admin_url)
    assert samples['outrider_webhook_deliveries_total{result="delivered"}'] == 1
    assert samples['outrider_webhook_attempts_total{result="http_5xx"}'] == 2
    assert samples['outrider_webhook_attempts_total{result="ok"}'] == 1
    assert samples["outrider_webhook_pending"] == 0
    assert samples['outrider_decisions_total{decision="ROLLBACK",experiment="ops"}'] == 1
    assert samples['outrider_decisions_total{decision="PROMOTE",experiment="ops"}'] == 0  # exists from start


async def test_a_hung_receiver_does_not_hold_the_shutdown(
    upstreams: tuple[Proc, Proc], outrider: OutriderFactory
) -> None:
    async with serving(Receiver(delay_s=60.0)) as (hook, url):  # 5 attempts × 2 s + backoff ≥ 13.75 s
        proxy = outrider(ops_yaml(upstreams[0].url), args=("--webhook-url", url, "--drain-delay", "0"))
        await drive_until_decided(proxy, "ops")
        await hook.seen(1)
        async with aiohttp.ClientSession() as session:
            samples = await scrape(session, proxy.admin_url)
        assert samples["outrider_webhook_pending"] == 1
        started = time.monotonic()
        assert proxy.stop() == 0
        elapsed = time.monotonic() - started
    assert (
        WEBHOOK_DRAIN_S - 0.5 <= elapsed < WEBHOOK_DRAIN_S + 2.0
    )  # kept trying until the deadline, no longer
    stopped = [line for line in proxy.log_lines() if line.get("event") == "stopped"]
    assert len(stopped) == 1
