"""Locust scenarios for any running outrider: many sticky users posting digits, and some feedback.

Each simulated user picks a user id once and sends it as `x-user-id` on every request (outrider's sticky
unit), posting real held-out digits (models/test_set.json) as OIP infer bodies. Now and then a user posts
feedback for one of its earlier answers to /outrider/v1/feedback with that answer's feedback token
(`x-outrider-feedback-token`): reward 1 if the answer's top class was the true digit, else 0. Only answers
that carry a token (experiments with a `reward_mean` goal) get feedback. Feedback that outrider refuses (bad
token 403, unknown id 404, duplicate 409, out of range or late 422) counts as a failure.

Usage (headless, against an outrider on 127.0.0.1:8080):
    locust -f loadtests/locustfile.py --headless -u 200 -r 50 -t 30s --host http://127.0.0.1:8080
Environment: OUTRIDER_TEST_SET (default models/test_set.json), OUTRIDER_MODEL (default digits),
OUTRIDER_FEEDBACK_WEIGHT (default 1, against 20 for infer; 0 turns feedback off).
"""

from __future__ import annotations

import os
import random
import uuid
from collections import deque
from functools import cache
from pathlib import Path

import orjson
from locust import HttpUser, between, task

from modelserver.testset import TestSet, infer_body, read_test_set

REPO = Path(__file__).resolve().parents[1]
TEST_SET = Path(os.environ.get("OUTRIDER_TEST_SET", REPO / "models" / "test_set.json"))
MODEL = os.environ.get("OUTRIDER_MODEL", "digits")
INFER_WEIGHT = 20
FEEDBACK_WEIGHT = int(os.environ.get("OUTRIDER_FEEDBACK_WEIGHT", "1"))


@cache
def test_set() -> TestSet:
    """The held-out digits, read once per locust process (on first use, so that importing stays cheap)."""
    return read_test_set(TEST_SET)


def top_class(payload: bytes) -> int | None:
    """The index of the largest output of an OIP infer answer, or None if the answer is not one."""
    try:
        data = orjson.loads(payload)["outputs"][0]["data"]
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError):
        return None
    return max(range(len(data)), key=data.__getitem__) if data else None


class OutriderUser(HttpUser):
    """One end user: a stable id, digits to classify, feedback on some of the answers."""

    wait_time = between(0.1, 0.5)

    def on_start(self) -> None:
        """Pick this user's id once: every request it sends carries it."""
        self.user_id = f"user-{uuid.uuid4().hex[:12]}"
        self.rng = random.Random(self.user_id)
        self.answered: deque[tuple[str, str, int]] = deque(maxlen=100)  # (x-request-id, token, reward)

    @task(INFER_WEIGHT)
    def infer(self) -> None:
        """POST one held-out digit; remember the request id and whether the answer was right."""
        ts = test_set()
        row = self.rng.randrange(len(ts.y))
        with self.client.post(
            f"/v2/models/{MODEL}/infer",
            data=orjson.dumps(infer_body([ts.x[row]])),
            headers={"x-user-id": self.user_id, "content-type": "application/json"},
            name="infer",
            catch_response=True,
        ) as resp:
            predicted = top_class(resp.content or b"")
            if resp.status_code != 200 or predicted is None:
                resp.failure(f"status {resp.status_code}, not an OIP answer")
                return
            rid, token = resp.headers.get("x-request-id"), resp.headers.get("x-outrider-feedback-token")
            if rid and token:
                self.answered.append((rid, token, int(predicted == ts.y[row])))

    @task(FEEDBACK_WEIGHT)
    def feedback(self) -> None:
        """Reward an earlier answer of this user (1 = right digit), once per answer."""
        if not self.answered:
            return
        rid, token, reward = self.answered.popleft()
        self.client.post(
            "/outrider/v1/feedback",
            data=orjson.dumps({"request_id": rid, "reward": reward, "token": token}),
            headers={"x-user-id": self.user_id, "content-type": "application/json"},
            name="feedback",
        )
