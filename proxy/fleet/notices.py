"""State change notices from Redis pub/sub: wake the state watch at once instead of at its next poll.

Usage: tasks.spawn(listen(url, CHANNEL, wake, stop), name="state-notices")  # wake: an asyncio.Event
A notice is only a hint: the watch still polls (a message published while this replica was disconnected is
never delivered), so a lost notice delays a change by one poll at most. Reconnects with a back-off while
Redis is away; never blocks the event loop (redis.asyncio).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from redis.asyncio import Redis
from redis.exceptions import RedisError

from proxy.telemetry.logs import event

RETRY_S = (0.2, 0.5, 1.0, 2.0)


async def listen(url: str, channel: str, wake: asyncio.Event, stop: asyncio.Event) -> None:
    """Set `wake` on every message of `channel` until `stop`."""
    failures = 0
    while not stop.is_set():
        client = Redis.from_url(url, socket_connect_timeout=2.0, health_check_interval=10)
        try:
            async with client.pubsub(ignore_subscribe_messages=True) as pubsub:
                await pubsub.subscribe(channel)
                if failures:
                    event("state notices back", channel=channel)
                    wake.set()  # changes may have been missed meanwhile
                failures = 0
                while not stop.is_set():
                    message = await pubsub.get_message(timeout=0.5)
                    if message is not None:
                        wake.set()
        except (RedisError, OSError) as err:
            if failures == 0:
                event("state notices lost", level=logging.WARNING, channel=channel, error=str(err))
            failures += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), RETRY_S[min(failures, len(RETRY_S)) - 1])
        finally:
            await client.aclose()
