"""`--auth-jwks-url` in a real outrider: keys fetched from a JWKS server run by the test, unknown kids refused
without hammering the issuer, cached keys kept when it goes down, and a 401 (never a 5xx) without keys."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import aiohttp
import jwt
import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from tests.integration.conftest import OutriderFactory, canary_yaml
from tests.support.http import scrape
from tests.support.jwks_server import JwksServer
from tests.support.procs import Proc

ISSUER, AUDIENCE = "https://issuer.test", "outrider-tests"


@pytest.fixture(scope="module")
def signing_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
async def jwks(signing_key: rsa.RSAPrivateKey) -> AsyncIterator[JwksServer]:
    jwk = RSAAlgorithm.to_jwk(signing_key.public_key(), as_dict=True)
    server = JwksServer(orjson.dumps({"keys": [{**jwk, "kid": "k1", "alg": "RS256", "use": "sig"}]}))
    await server.start()
    yield server
    await server.stop()


def bearer(key: rsa.RSAPrivateKey, kid: str) -> dict[str, str]:
    now = int(time.time())
    claims = {"sub": "alice", "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 300}
    return {"Authorization": "Bearer " + jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})}


async def start_outrider(outrider: OutriderFactory, upstreams: tuple[Proc, Proc], jwks_url: str) -> Proc:
    stable, candidate = upstreams
    args = ("--auth-issuer", ISSUER, "--auth-audience", AUDIENCE, "--auth-jwks-url", jwks_url)
    # In a thread: outrider fetches the keys from this test's event loop while `start` waits for it.
    return await asyncio.to_thread(outrider, canary_yaml(stable.url, candidate.url), args=args)


async def status(session: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> int:
    async with session.post(url, data=b"{}", headers=headers) as r:
        if r.status == 401:
            assert r.headers["WWW-Authenticate"].startswith('Bearer realm="outrider"')
        return r.status


async def test_keys_come_from_the_jwks_url(
    upstreams: tuple[Proc, Proc], outrider: OutriderFactory, jwks: JwksServer, signing_key: rsa.RSAPrivateKey
) -> None:
    proxy = await start_outrider(outrider, upstreams, jwks.url)
    url = f"{proxy.url}/v2/models/m/infer"
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    async with aiohttp.ClientSession() as session:
        assert jwks.hits == 1  # fetched once at start-up, before `listening`
        assert await status(session, url, bearer(signing_key, "k1")) == 200
        assert await status(session, url, bearer(other, "k1")) == 401  # right kid, wrong signature
        unknown = await asyncio.gather(*(status(session, url, bearer(other, "k9")) for _ in range(50)))
        assert unknown == [401] * 50
        assert jwks.hits == 1  # within the 30 s cooldown: no fetch per unknown kid
        await jwks.stop()
        assert await status(session, url, bearer(signing_key, "k1")) == 200  # cached keys still verify
        samples = await scrape(session, proxy.admin_url)
    assert samples['outrider_jwks_fetch_total{result="ok"}'] == 1
    assert samples['outrider_jwks_fetch_total{result="error"}'] == 0
    assert samples["outrider_outcomes_produced_total"] == 2  # the refused 51 never reached an upstream
    assert proxy.stop() == 0
    assert "Unclosed" not in proxy.log.read_text()


async def test_no_keys_yet_is_401_not_5xx(
    upstreams: tuple[Proc, Proc], outrider: OutriderFactory, jwks: JwksServer, signing_key: rsa.RSAPrivateKey
) -> None:
    down = jwks.url
    await jwks.stop()
    proxy = await start_outrider(outrider, upstreams, down)
    async with aiohttp.ClientSession() as session:
        assert await status(session, f"{proxy.url}/v2/models/m/infer", bearer(signing_key, "k1")) == 401
        samples = await scrape(session, proxy.admin_url)
    assert samples['outrider_jwks_fetch_total{result="error"}'] == 1
    assert samples['outrider_jwks_fetch_total{result="ok"}'] == 0
