"""`proxy.dataplane.deadline.Deadline`: one handle, moved lazily, fires once at the deadline in force."""

from __future__ import annotations

import asyncio

from proxy.dataplane.deadline import Deadline
from proxy.runtime import loop as runtime_loop


def fired_at(script: list[tuple[float, str, float]], wait: float) -> list[float]:
    """Run `script` ((at, "arm"|"disarm"|"stop", the deadline's offset from `at`)); when `on_expiry` ran
    (seconds from the start)."""
    fired: list[float] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        deadline = Deadline(loop, lambda: fired.append(loop.time() - start))
        for at, action, offset in script:
            await asyncio.sleep(max(0.0, start + at - loop.time()))  # the subject: time passing
            if action == "arm":
                deadline.arm(loop.time() + offset)
            elif action == "disarm":
                deadline.disarm()
            else:
                deadline.stop()
        await asyncio.sleep(max(0.0, start + wait - loop.time()))  # let the last deadline pass

    runtime_loop.run(main())
    return fired


def test_moved_later_it_fires_once_at_the_last_deadline() -> None:
    fired = fired_at([(0.0, "arm", 0.2), (0.1, "arm", 0.2), (0.25, "arm", 0.2)], wait=0.7)
    assert len(fired) == 1
    assert 0.44 <= fired[0] <= 0.55


def test_moved_earlier_it_fires_at_the_earlier_deadline() -> None:
    fired = fired_at([(0.0, "arm", 1.0), (0.05, "arm", 0.1)], wait=0.4)
    assert len(fired) == 1
    assert 0.14 <= fired[0] <= 0.25


def test_disarmed_or_stopped_it_does_not_fire() -> None:
    assert fired_at([(0.0, "arm", 0.1), (0.05, "disarm", 0.0)], wait=0.3) == []
    assert fired_at([(0.0, "arm", 0.1), (0.05, "stop", 0.0)], wait=0.3) == []
    assert len(fired_at([(0.0, "arm", 0.1), (0.05, "disarm", 0.0), (0.15, "arm", 0.1)], wait=0.4)) == 1
