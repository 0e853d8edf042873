"""`JwksKeys` against a real aiohttp JWKS server on 127.0.0.1:0, with a fake clock for cache and cooldown."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import jwt
import orjson
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from proxy.auth.jwks_fetch import MAX_JWKS_BYTES, TIMEOUT_S, JwksKeys
from proxy.auth.settings import AuthSettings
from proxy.dataplane.errors import Unauthorized
from proxy.filters.auth import Auth
from tests.proxy.test_auth import AUD, ISS, SECRET, Terminal, b64, claims, exchange
from tests.support.jwks_server import JwksServer


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def publish(server: JwksServer, keys: dict[str, rsa.RSAPrivateKey], **extra: Any) -> None:
    jwks = [
        {**RSAAlgorithm.to_jwk(k.public_key(), as_dict=True), "kid": kid, **extra} for kid, k in keys.items()
    ]
    server.body = orjson.dumps({"keys": jwks})


@pytest.fixture(scope="module")
def rsa_keys() -> list[rsa.RSAPrivateKey]:
    return [rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(3)]


@pytest.fixture
async def server(rsa_keys: list[rsa.RSAPrivateKey]) -> AsyncIterator[JwksServer]:
    srv = JwksServer()
    publish(srv, {"k1": rsa_keys[0]})
    await srv.start()
    yield srv
    await srv.stop()


@pytest.fixture
async def source(server: JwksServer) -> AsyncIterator[tuple[JwksKeys, FakeClock]]:
    clock = FakeClock()
    keys = JwksKeys(server.url, ("RS256",), clock=clock)
    await keys.start()
    yield keys, clock
    await keys.close()


def auth_for(keys: JwksKeys, algorithms: tuple[str, ...] = ("RS256",)) -> Auth:
    return Auth(AuthSettings(algorithms, ISS, AUD, None, jwks_url=keys.url), keys)


def signed(key: rsa.RSAPrivateKey, kid: str, alg: str = "RS256") -> str:
    return "Bearer " + jwt.encode(claims(), key, algorithm=alg, headers={"kid": kid})


async def status_of(auth: Auth, authorization: str) -> int:
    try:
        await auth(exchange(authorization), Terminal())
    except Unauthorized as exc:
        challenge = exc.headers["WWW-Authenticate"]
    else:
        return 200
    assert challenge.startswith('Bearer realm="outrider"')
    return 401


async def test_defaults_are_the_safe_defaults(server: JwksServer) -> None:
    keys = JwksKeys(server.url, ("RS256",))
    assert (keys.cache_s, keys.cooldown_s, keys.timeout_s, keys.max_bytes) == (300.0, 30.0, 2.0, 1 << 20)


async def test_rotation_is_picked_up_by_one_refresh_after_the_cooldown(
    server: JwksServer, source: tuple[JwksKeys, FakeClock], rsa_keys: list[rsa.RSAPrivateKey]
) -> None:
    keys, clock = source
    auth = auth_for(keys)
    assert await status_of(auth, signed(rsa_keys[0], "k1")) == 200
    publish(server, {"k1": rsa_keys[0], "k2": rsa_keys[1]})
    clock.now += 10  # within the cooldown of the start-up fetch: the new kid is not looked for yet
    assert await status_of(auth, signed(rsa_keys[1], "k2")) == 401
    assert server.hits == 1
    clock.now += 21
    assert await status_of(auth, signed(rsa_keys[1], "k2")) == 200
    assert await status_of(auth, signed(rsa_keys[0], "k1")) == 200
    assert server.hits == 2
    assert keys.fetches["ok"] == 2


async def test_unknown_kid_hammered_costs_one_fetch_per_cooldown(
    server: JwksServer, source: tuple[JwksKeys, FakeClock], rsa_keys: list[rsa.RSAPrivateKey]
) -> None:
    keys, clock = source
    auth = auth_for(keys)
    server.delay = 0.05  # the fetch is in flight while the other 99 ask
    clock.now += 31
    forged = signed(rsa_keys[2], "made-up")
    statuses = await asyncio.gather(*(status_of(auth, forged) for _ in range(100)))
    assert statuses == [401] * 100
    assert server.hits == 2  # start-up + exactly one refresh shared by all 100
    for _ in range(100):
        assert await status_of(auth, forged) == 401
    assert server.hits == 2
    clock.now += 30
    assert await status_of(auth, forged) == 401
    assert server.hits == 3  # the next cooldown allows the next fetch


async def settled(keys: JwksKeys) -> None:
    """Wait for the background fetch, if any."""
    for _ in range(300):
        if keys._inflight is None:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the JWKS fetch did not finish")


async def test_expired_keys_answer_while_a_background_refresh_replaces_them(
    server: JwksServer, source: tuple[JwksKeys, FakeClock], rsa_keys: list[rsa.RSAPrivateKey]
) -> None:
    keys, clock = source
    auth = auth_for(keys)
    publish(server, {"k2": rsa_keys[1]})  # k1 retired by the issuer
    server.delay = 0.2
    clock.now += 299
    assert await status_of(auth, signed(rsa_keys[0], "k1")) == 200
    assert server.hits == 1  # still fresh: nothing fetched
    clock.now += 1
    started = time.monotonic()
    assert await status_of(auth, signed(rsa_keys[0], "k1")) == 200  # answered at once from the cache
    assert time.monotonic() - started < 0.15
    await settled(keys)
    assert server.hits == 2
    assert await status_of(auth, signed(rsa_keys[1], "k2")) == 200
    assert await status_of(auth, signed(rsa_keys[0], "k1")) == 401  # retired keys go with the refresh


async def test_server_down_means_401_for_unknown_keys_and_stale_keys_still_work(
    server: JwksServer, source: tuple[JwksKeys, FakeClock], rsa_keys: list[rsa.RSAPrivateKey]
) -> None:
    keys, clock = source
    auth = auth_for(keys)
    await server.stop()
    clock.now += 301  # the cache expired: this request is answered from the stale keys, a refresh starts
    assert await status_of(auth, signed(rsa_keys[0], "k1")) == 200
    await settled(keys)
    assert keys.fetches["error"] == 1
    clock.now += 31
    assert await status_of(auth, signed(rsa_keys[1], "k2")) == 401
    assert keys.fetches["error"] == 2
    assert await status_of(auth, signed(rsa_keys[0], "k1")) == 200
    assert keys.fetches["ok"] == 1


async def test_slow_server_times_out_at_two_seconds(
    server: JwksServer, source: tuple[JwksKeys, FakeClock], rsa_keys: list[rsa.RSAPrivateKey]
) -> None:
    keys, clock = source
    auth = auth_for(keys)
    server.delay = TIMEOUT_S + 0.5
    clock.now += 31
    started = time.monotonic()
    assert await status_of(auth, signed(rsa_keys[1], "k2")) == 401
    elapsed = time.monotonic() - started
    assert TIMEOUT_S - 0.05 <= elapsed <= TIMEOUT_S + 0.4
    assert keys.fetches["timeout"] == 1
    assert await status_of(auth, signed(rsa_keys[0], "k1")) == 200


@pytest.mark.parametrize(
    ("body", "chunked", "result"),
    [
        pytest.param(b" " * MAX_JWKS_BYTES + b"{}", False, "too_large", id="content-length-over-cap"),
        pytest.param(b" " * MAX_JWKS_BYTES + b"{}", True, "too_large", id="chunked-over-cap"),
        pytest.param(b"{not json", False, "invalid", id="garbage"),
        pytest.param(b'{"keys": []}', False, "invalid", id="no-keys"),
        pytest.param(b'{"keys": "k1"}', False, "invalid", id="keys-not-a-list"),
        pytest.param(
            orjson.dumps({"keys": [{"kty": "oct", "k": b64(SECRET), "kid": "k9"}]}),
            False,
            "invalid",
            id="hmac-key-for-rs-allowlist",
        ),
        pytest.param(b'{"keys": [{"kty": "RSA", "kid": "k9"}]}', False, "invalid", id="rsa-without-n-e"),
    ],
)
async def test_bad_documents_are_refused_and_old_keys_kept(
    server: JwksServer,
    source: tuple[JwksKeys, FakeClock],
    rsa_keys: list[rsa.RSAPrivateKey],
    body: bytes,
    chunked: bool,
    result: str,
) -> None:
    keys, clock = source
    auth = auth_for(keys)
    server.body, server.chunked = body, chunked
    clock.now += 31
    assert await status_of(auth, signed(rsa_keys[1], "k9")) == 401
    assert keys.fetches[result] == 1
    assert keys.fetches["ok"] == 1
    assert await status_of(auth, signed(rsa_keys[0], "k1")) == 200


async def test_http_error_status_is_counted(
    server: JwksServer, source: tuple[JwksKeys, FakeClock], rsa_keys: list[rsa.RSAPrivateKey]
) -> None:
    keys, clock = source
    server.status = 503
    clock.now += 31
    assert await status_of(auth_for(keys), signed(rsa_keys[1], "k2")) == 401
    assert keys.fetches["error"] == 1


async def test_failed_start_recovers_on_a_later_fetch(
    server: JwksServer, rsa_keys: list[rsa.RSAPrivateKey]
) -> None:
    server.status = 500
    clock = FakeClock()
    keys = JwksKeys(server.url, ("RS256",), clock=clock)
    await keys.start()
    try:
        auth = auth_for(keys)
        assert keys.fetches["error"] == 1
        assert await status_of(auth, signed(rsa_keys[0], "k1")) == 401
        server.status = 200
        clock.now += 30
        assert await status_of(auth, signed(rsa_keys[0], "k1")) == 200
    finally:
        await keys.close()
    assert keys.fetches == {"ok": 1, "timeout": 0, "error": 1, "too_large": 0, "invalid": 0, "redirect": 0}


async def test_a_jwk_alg_pins_its_key(server: JwksServer, rsa_keys: list[rsa.RSAPrivateKey]) -> None:
    publish(server, {"k1": rsa_keys[0]}, alg="RS512")
    keys = JwksKeys(server.url, ("RS256", "RS512"))
    await keys.start()
    try:
        auth = auth_for(keys, ("RS256", "RS512"))
        assert await status_of(auth, signed(rsa_keys[0], "k1", "RS512")) == 200
        assert await status_of(auth, signed(rsa_keys[0], "k1", "RS256")) == 401
    finally:
        await keys.close()


async def test_close_closes_the_session_and_later_lookups_fetch_nothing(server: JwksServer) -> None:
    clock = FakeClock()
    keys = JwksKeys(server.url, ("RS256",), clock=clock)
    await keys.start()
    await keys.close()
    clock.now += 31
    assert await keys.find("other") is None
    assert server.hits == 1
    assert keys.fetches["error"] == 1


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        pytest.param({}, "exactly one", id="neither"),
        pytest.param({"jwks_url": "http://x/jwks", "with_keys": True}, "exactly one", id="both"),
        pytest.param({"jwks_url": "file:///etc/jwks"}, "http", id="not-http"),
        pytest.param({"jwks_url": "http://x/jwks", "algorithms": ("HS256",)}, "HS", id="hmac-over-http"),
    ],
)
def test_settings_refuse_bad_key_sources(
    rsa_keys: list[rsa.RSAPrivateKey], kw: dict[str, Any], message: str
) -> None:
    from proxy.auth.jwt_keys import KeyEntry, KeySet

    keys = KeySet(default=KeyEntry(rsa_keys[0].public_key())) if kw.pop("with_keys", False) else None
    with pytest.raises(ValueError, match=message):
        AuthSettings(kw.pop("algorithms", ("RS256",)), ISS, AUD, keys, **kw)


def test_auth_needs_the_fetcher_for_a_jwks_url() -> None:
    with pytest.raises(ValueError, match="JwksKeys"):
        Auth(AuthSettings(("RS256",), ISS, AUD, None, jwks_url="https://issuer.test/jwks"))


async def test_a_redirect_is_a_failed_fetch_and_never_followed(
    server: JwksServer, rsa_keys: list[rsa.RSAPrivateKey]
) -> None:
    async def moved(request: web.Request) -> web.Response:
        raise web.HTTPFound(server.url)  # to a server that would serve valid keys

    app = web.Application()
    app.router.add_get("/jwks", moved)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    keys = JwksKeys(f"http://{host}:{port}/jwks", ("RS256",))
    try:
        await keys.start()
        assert await status_of(auth_for(keys), signed(rsa_keys[0], "k1")) == 401
        assert keys.fetches["redirect"] >= 1
        assert server.hits == 0
    finally:
        await keys.close()
        await runner.cleanup()


async def test_a_cached_token_stops_working_when_its_key_is_retired(
    server: JwksServer, source: tuple[JwksKeys, FakeClock], rsa_keys: list[rsa.RSAPrivateKey]
) -> None:
    keys, clock = source
    auth = auth_for(keys)
    token = signed(rsa_keys[0], "k1")
    assert await status_of(auth, token) == 200
    assert len(auth.verified) == 1  # the signature is checked once ...
    publish(server, {"k2": rsa_keys[1]})
    clock.now += 301
    await keys.find("k1")  # the stale set answers and starts the refresh
    await settled(keys)
    assert await status_of(auth, token) == 401  # ... but a hit only counts while its key is in force
