"""The decision webhook against real receivers on 127.0.0.1: retries with backoff on 5xx, signed bodies, final
4xx, a receiver that is down or hangs (failures counted, shutdown bounded by its deadline), a full queue."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import random
import socket
import time
from collections.abc import Mapping

import orjson
import pytest

from proxy.control.webhook import Webhook, WebhookLimits, backoff, check_url
from tests.support.receiver import Receiver, serving
from tests.support.wait import wait_until

FAST = WebhookLimits(backoff_s=0.05, backoff_max_s=0.2, timeout_s=0.5)


def dead_url() -> str:
    """A 127.0.0.1 URL where nothing listens (the port was just free)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"


async def settled(hook: Webhook) -> None:
    """Wait (≤ 5 s) until nothing is queued or in flight."""
    for _ in range(500):
        if hook.pending == 0:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{hook.pending} events still pending")


def balanced(hook: Webhook) -> bool:
    return hook.offered == sum(hook.deliveries.values()) + hook.pending


async def deliver(hook: Webhook, *events: Mapping[str, object]) -> list[bool]:
    """Start the sender, offer `events` (no await in between), wait until settled, close."""
    hook.start()
    accepted = [hook.offer(event) for event in events]
    await settled(hook)
    await hook.close(deadline_s=1.0)
    assert balanced(hook)
    return accepted


async def test_two_503s_then_delivered_signed_with_backoff() -> None:
    event = {"experiment": "split", "decision": "ROLLBACK", "reasons": ["error_rate"]}
    async with serving(Receiver((503, 503))) as (receiver, url):
        hook = Webhook(url, secret=b"k3y", limits=FAST, rng=random.Random(1))
        assert await deliver(hook, event) == [True]
    assert hook.deliveries == {"delivered": 1}
    assert hook.attempts == {"http_5xx": 2, "ok": 1}
    times, bodies, signatures = zip(*receiver.calls, strict=True)
    assert len(bodies) == 3
    assert len(set(bodies)) == 1  # the same bytes every attempt
    assert orjson.loads(bodies[0]) == event
    expected = "sha256=" + hmac.new(b"k3y", bodies[0], hashlib.sha256).hexdigest()
    assert set(signatures) == {expected}
    assert times[1] - times[0] >= 0.025  # ≥ half of 0.05 s
    assert times[2] - times[1] >= 0.05  # ≥ half of 0.1 s: the wait doubled


async def test_a_4xx_is_final_and_no_secret_means_no_signature() -> None:
    async with serving(Receiver((400, 400))) as (receiver, url):
        hook = Webhook(url, limits=FAST)
        await deliver(hook, {"decision": "PROMOTE"})
    assert hook.deliveries == {"failed": 1}
    assert hook.attempts == {"http_4xx": 1}
    assert [sig for _, _, sig in receiver.calls] == [None]


async def test_a_receiver_that_is_down_is_tried_then_counted_failed() -> None:
    hook = Webhook(dead_url(), limits=WebhookLimits(attempts=3, backoff_s=0.01, backoff_max_s=0.02))
    await deliver(hook, {"decision": "ROLLBACK"})
    assert hook.deliveries == {"failed": 1}
    assert hook.attempts == {"connect_error": 3}


async def test_a_receiver_slower_than_the_timeout_counts_timeouts() -> None:
    async with serving(Receiver(delay_s=1.0)) as (_, url):
        hook = Webhook(url, limits=WebhookLimits(attempts=2, backoff_s=0.01, timeout_s=0.2))
        started = time.monotonic()
        await deliver(hook, {"decision": "ROLLBACK"})
        assert time.monotonic() - started < 1.0  # two 0.2 s attempts, not two 1 s answers
    assert hook.deliveries == {"failed": 1}
    assert hook.attempts == {"timeout": 2}


async def test_a_full_queue_drops_and_counts() -> None:
    async with serving(Receiver(delay_s=0.2)) as (receiver, url):
        hook = Webhook(url, limits=WebhookLimits(queue=2, timeout_s=1.0))
        accepted = await deliver(hook, *({"n": n} for n in range(5)))  # the sender has not run yet
    assert accepted == [True, True, False, False, False]
    assert hook.deliveries == {"dropped": 3, "delivered": 2}
    assert [orjson.loads(body) for _, body, _ in receiver.calls] == [{"n": 0}, {"n": 1}]


@pytest.mark.parametrize("down", ["refused", "hung"])
async def test_shutdown_is_bounded_by_the_deadline(down: str) -> None:
    async with serving(Receiver(delay_s=30.0)) as (hung, hung_url):
        hook = Webhook(dead_url() if down == "refused" else hung_url)  # defaults: ~17 s if waited for
        hook.start()
        for kind in ("ADVANCE", "ADVANCE", "ROLLBACK"):
            hook.offer({"decision": kind})
        # the first one is in flight (at the hung receiver) or backing off (after a refused attempt)
        await wait_until(lambda: hung.calls or hook.attempts, 5.0)
        started = time.monotonic()
        await hook.close(deadline_s=0.5)
        assert 0.45 <= time.monotonic() - started < 0.8
    assert hook.deliveries == {"shutdown": 3}
    assert not hook.offer({"decision": "PROMOTE"})  # closed: counted, not queued
    assert hook.deliveries == {"shutdown": 4}
    assert hook.pending == 0
    assert balanced(hook)


def test_backoff_doubles_up_to_the_cap_with_equal_jitter() -> None:
    limits, rng = WebhookLimits(), random.Random(7)
    for attempt, ceiling in ((1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 8.0), (9, 8.0)):
        waits = [backoff(attempt, limits, rng) for _ in range(200)]
        assert ceiling / 2 <= min(waits)
        assert max(waits) <= ceiling
        assert max(waits) - min(waits) > ceiling / 4  # jittered, not constant


@pytest.mark.parametrize("url", ["ftp://host/x", "http:///nohost", "127.0.0.1:9000/hook", ""])
def test_only_absolute_http_urls_are_accepted(url: str) -> None:
    with pytest.raises(ValueError, match="expected http"):
        check_url(url)
