"""Feedback cannot steer decisions: a real outrider takes a reward only with the token of the request's own
response (bound to the authenticated subject when JWT auth is on), once, within the goal's range; the token's
key is made once in the data dir (0600) and survives restarts; `exposeVariant: false` hides the arm."""

from __future__ import annotations

import asyncio
import re
import stat
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import orjson
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from multidict import CIMultiDictProxy

from experiments.assignment import unit_hash
from experiments.builder import Analysis, Goal
from proxy.feedback.token import FeedbackTokens, read_secret
from tests.integration.conftest import OutriderFactory, canary_yaml
from tests.support.cli import exported
from tests.support.http import scrape
from tests.support.procs import Proc, run_cmd

TOKEN = "x-outrider-feedback-token"
VARIANT = "x-outrider-variant"
TOKEN_FORMAT = re.compile(r"[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}")
ISSUER, AUDIENCE = "https://issuer.test", "outrider-tests"


def rewarded(stable: str, candidate: str, *, low: float = 0, high: float = 1, **changes: Any) -> str:
    """A canary experiment judged on rewards within [low, high] (`changes`: as for `canary_yaml`)."""
    goal = Goal("reward_mean", "increase", range=(low, high))
    return canary_yaml(stable, candidate, analysis=Analysis(goals=(goal,), feedback_window="1h"), **changes)


async def ask(
    session: aiohttp.ClientSession, url: str, user: str, headers: dict[str, str] | None = None
) -> tuple[str, str | None, CIMultiDictProxy[str]]:
    """(request id, feedback token or None, response headers) of one inference request."""
    async with session.post(url, data=b"{}", headers={"x-user-id": user, **(headers or {})}) as r:
        assert r.status == 200, await r.text()
        return r.headers["x-request-id"], r.headers.get(TOKEN), r.headers


async def feedback(
    session: aiohttp.ClientSession, proxy: Proc, body: dict[str, Any] | bytes, **headers: str
) -> tuple[int, dict[str, Any]]:
    """(status, JSON answer) of one feedback post."""
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    async with session.post(f"{proxy.url}/outrider/v1/feedback", data=data, headers=headers) as r:
        return r.status, orjson.loads(await r.read())


def flipped(token: str) -> str:
    """The token with the last character of its MAC changed: the request tag still holds, the MAC does not."""
    return token[:-1] + ("A" if token[-1] != "A" else "B")


async def test_feedback_needs_the_token_of_its_response(
    upstreams: tuple[Proc, Proc], outrider: OutriderFactory, tmp_path: Path
) -> None:
    stable, candidate = upstreams
    data_dir = tmp_path / "data"
    proxy = outrider(
        rewarded(stable.url, candidate.url),
        rewarded(stable.url, candidate.url, name="stars", prefix="/v3", low=1, high=5),
        canary_yaml(stable.url, candidate.url, name="plain", prefix="/v4"),
        data_dir=data_dir,
    )
    forbidden = out_of_range = 0

    async def refused(body: dict[str, Any] | bytes, status: int, code: str) -> None:
        nonlocal forbidden, out_of_range
        got, answer = await feedback(session, proxy, body)
        assert (got, answer["code"]) == (status, code), body
        forbidden += code == "bad_feedback_token"
        out_of_range += code == "reward_out_of_range"

    async with aiohttp.ClientSession() as session:
        rid, token, headers = await ask(session, f"{proxy.url}/v2/x", "alice")
        other_rid, other_token, _ = await ask(session, f"{proxy.url}/v2/x", "bob")
        assert token is not None
        assert other_token is not None
        assert TOKEN_FORMAT.fullmatch(token)
        assert TOKEN_FORMAT.fullmatch(other_token)
        assert token != other_token
        _, none, _ = await ask(session, f"{proxy.url}/v4/x", "alice")  # no reward goal: no token
        assert none is None

        # every wrong token is a 403 before anything else is looked at
        await refused({"request_id": rid, "reward": 1}, 403, "bad_feedback_token")
        for wrong in ("", "x", 123, None, flipped(token), other_token, "é" * 66):
            await refused({"request_id": rid, "reward": 1, "token": wrong}, 403, "bad_feedback_token")
        await refused({"request_id": other_rid, "reward": 1, "token": token}, 403, "bad_feedback_token")
        # an unknown id with a forged token is refused like a known one: nothing to learn about ids
        await refused({"request_id": "never-seen", "reward": 1, "token": token}, 403, "bad_feedback_token")
        await refused({"request_id": "never-seen", "reward": 1}, 403, "bad_feedback_token")
        # a token issued for an id whose outcome is not stored: 404
        tokens = FeedbackTokens(read_secret(data_dir / "feedback.secret"))
        unknown = {
            "request_id": "never-seen",
            "reward": 1,
            "token": tokens.issue("never-seen", "split", "", None),
        }
        status, answer = await feedback(session, proxy, unknown)
        assert (status, answer["code"]) == (404, "unknown_request")

        # the reward must be a finite number within the goal's range [0, 1]
        for reward in (1.5, -0.25, 1e200, -1e200):
            await refused({"request_id": rid, "reward": reward, "token": token}, 422, "reward_out_of_range")
        for raw in (b"NaN", b"Infinity", b"-Infinity", b"1e400", b"1" + b"0" * 400):
            body = b'{"request_id": "%s", "reward": %s, "token": "%s"}' % (rid.encode(), raw, token.encode())
            await refused(body, 422, "reward_out_of_range")
        for malformed in (b"{not json", b"[]", b'{"token": "x"}', b'{"request_id": "x", "reward": "1"}'):
            await refused(malformed, 400, "bad_request")

        status, answer = await feedback(session, proxy, {"request_id": rid, "reward": 0.75, "token": token})
        assert status == 200, answer
        assert answer == {"request_id": rid, "experiment": "split", "variant": headers[VARIANT]}
        await refused({"request_id": rid, "reward": 0.75, "token": token}, 409, "duplicate_feedback")
        await refused({"request_id": rid, "reward": 0.0, "token": token}, 409, "duplicate_feedback")

        # another experiment's range: [1, 5]
        star_rid, star_token, _ = await ask(session, f"{proxy.url}/v3/x", "carol")
        assert star_token is not None
        await refused(
            {"request_id": star_rid, "reward": 0.5, "token": star_token}, 422, "reward_out_of_range"
        )
        status, _ = await feedback(session, proxy, {"request_id": star_rid, "reward": 4, "token": star_token})
        assert status == 200
        samples = await scrape(session, proxy.admin_url)
    assert samples['outrider_feedback_total{result="forbidden"}'] == forbidden == 11
    assert samples['outrider_feedback_total{result="out_of_range"}'] == out_of_range == 10
    assert samples['outrider_feedback_total{result="accepted"}'] == 2
    assert samples['outrider_feedback_total{result="duplicate"}'] == 2
    assert samples['outrider_feedback_total{result="unknown"}'] == 1
    proxy.stop()
    rewards = {r["request_id"]: r["reward"] for r in await exported(data_dir)}
    assert len(rewards) == 4  # with the /v4 request's
    assert (rewards[rid], rewards[other_rid], rewards[star_rid]) == (0.75, None, 4.0)


def rsa_key(tmp_path: Path) -> tuple[rsa.RSAPrivateKey, Path]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = tmp_path / "public.pem"
    pem.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return key, pem


def bearer(key: rsa.RSAPrivateKey, sub: str) -> dict[str, str]:
    now = int(time.time())
    claims = {"sub": sub, "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 300}
    return {"Authorization": f"Bearer {jwt.encode(claims, key, algorithm='RS256')}"}


async def test_with_auth_only_the_same_subject_may_post(
    upstreams: tuple[Proc, Proc], outrider: OutriderFactory, tmp_path: Path
) -> None:
    stable, candidate = upstreams
    key, pem = rsa_key(tmp_path)
    config = rewarded(stable.url, candidate.url, unit="claim:sub")
    auth = ("--auth-issuer", ISSUER, "--auth-audience", AUDIENCE, "--auth-keys", str(pem))
    proxy = outrider(config, args=auth)
    alice, bob = bearer(key, "alice"), bearer(key, "bob")
    async with aiohttp.ClientSession() as session:
        rid, token, _ = await ask(session, f"{proxy.url}/v2/x", "ignored", alice)
        assert token is not None
        post = {"request_id": rid, "reward": 1, "token": token}
        status, answer = await feedback(session, proxy, post, **bob)  # bob holds alice's token: not enough
        assert (status, answer["code"]) == (403, "bad_feedback_token")
        status, answer = await feedback(session, proxy, post)  # no JWT at all: the auth filter refuses
        assert (status, answer["code"]) == (401, "unauthorized")
        status, answer = await feedback(session, proxy, post, **alice)
        assert status == 200, answer
        bob_rid, bob_token, _ = await ask(session, f"{proxy.url}/v2/x", "ignored", bob)
        assert bob_token is not None
        status, _ = await feedback(
            session, proxy, {"request_id": bob_rid, "reward": 0, "token": bob_token}, **alice
        )
        assert status == 403
        status, _ = await feedback(
            session, proxy, {"request_id": bob_rid, "reward": 0, "token": bob_token}, **bob
        )
        assert status == 200


async def test_the_secret_is_made_once_with_0600_and_survives_a_restart(
    upstreams: tuple[Proc, Proc], outrider: OutriderFactory, tmp_path: Path
) -> None:
    stable, candidate = upstreams
    config = rewarded(stable.url, candidate.url)
    data_dir = tmp_path / "data"
    first = outrider(config, data_dir=data_dir)
    secret_file = data_dir / "feedback.secret"
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    secret = secret_file.read_bytes()
    assert re.fullmatch(rb"[0-9a-f]{64}\n", secret)
    assert [p.name for p in data_dir.iterdir() if "secret" in p.name] == ["feedback.secret"]  # no leftovers
    async with aiohttp.ClientSession() as session:
        rid, token, _ = await ask(session, f"{first.url}/v2/x", "alice")
    # the documented format: TAG.MAC keyed with the file's content, TAG carrying the issue time
    assert token is not None
    tokens = FeedbackTokens(secret.strip())
    issued = tokens.issued_at(token, rid, None)
    assert issued is not None
    assert abs(issued - time.time()) < 60
    assert token == tokens.issue(rid, "split", unit_hash("alice"), None, at=issued)
    first.stop()

    second = outrider(config, data_dir=data_dir)
    assert secret_file.read_bytes() == secret
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    async with aiohttp.ClientSession() as session:
        status, answer = await feedback(session, second, {"request_id": rid, "reward": 1, "token": token})
        assert status == 200, answer  # a token issued before the restart
        _, again, _ = await ask(session, f"{second.url}/v2/x", "alice")
    assert again is not None
    assert again != token


async def test_the_secret_file_setting(
    upstreams: tuple[Proc, Proc], outrider: OutriderFactory, tmp_path: Path
) -> None:
    stable, candidate = upstreams
    config = rewarded(stable.url, candidate.url)
    secret_file = tmp_path / "feedback-key"
    secret_file.write_text("k" * 40 + "\n")
    secret_file.chmod(0o600)
    data_dir = tmp_path / "data"
    proxy = outrider(config, data_dir=data_dir, args=("--feedback-secret-file", str(secret_file)))
    async with aiohttp.ClientSession() as session:
        rid, token, _ = await ask(session, f"{proxy.url}/v2/x", "alice")
        assert token is not None
        tokens = FeedbackTokens(b"k" * 40)
        at = tokens.issued_at(token, rid, None)
        assert token == tokens.issue(rid, "split", unit_hash("alice"), None, at=at)
        status, _ = await feedback(session, proxy, {"request_id": rid, "reward": 1, "token": token})
        assert status == 200
    assert not (data_dir / "feedback.secret").exists()

    short = tmp_path / "short-key"
    short.write_text("too short\n")
    (tmp_path / "e.yaml").write_text(config)
    cmd = run_cmd([tmp_path / "e.yaml"], tmp_path / "other", "--feedback-secret-file", str(short))
    done = await asyncio.to_thread(subprocess.run, cmd, capture_output=True, timeout=60)
    assert done.returncode == 2
    assert b"--feedback-secret-file" in done.stderr
    assert b"at least 32 bytes" in done.stderr


@pytest.fixture
async def leaky_upstream() -> AsyncIterator[str]:
    """A real upstream on 127.0.0.1 that answers with outrider's own headers (a chained sidecar, a forger)."""

    async def handle(request: web.Request) -> web.Response:
        status = 500 if "fail" in request.path else 200
        headers = {VARIANT: "leaked", TOKEN: "forged"}
        return web.Response(status=status, body=b"{}", headers=headers, content_type="application/json")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    yield f"http://{host}:{port}"
    await runner.cleanup()


async def test_expose_variant_false_hides_the_arm(
    leaky_upstream: str, outrider: OutriderFactory, tmp_path: Path
) -> None:
    hidden = rewarded(leaky_upstream, leaky_upstream, name="hidden", expose_variant=False)
    shown = canary_yaml(leaky_upstream, leaky_upstream, name="shown", prefix="/v3")
    proxy = outrider(hidden, shown)
    async with aiohttp.ClientSession() as session:
        for path, status in (("/v2/x", 200), ("/v2/fail", 500)):
            async with session.post(f"{proxy.url}{path}", data=b"{}", headers={"x-user-id": "u"}) as r:
                assert r.status == status
                assert VARIANT not in r.headers
                rid, token = r.headers["x-request-id"], r.headers[TOKEN]
                assert token != "forged"
        status, answer = await feedback(session, proxy, {"request_id": rid, "reward": 1, "token": token})
        assert (status, answer) == (
            200,
            {"request_id": rid, "experiment": "hidden"},
        )  # no variant here either
        async with session.post(f"{proxy.url}/v3/x", data=b"{}", headers={"x-user-id": "u"}) as r:
            assert r.headers[VARIANT] in ("stable", "candidate")  # outrider's, not the upstream's
            assert TOKEN not in r.headers  # no reward goal: no token, and never the upstream's
