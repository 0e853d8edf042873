"""JWT auth and rate limits in a real outrider: refused requests get 401/429 with their headers, reach no
upstream (no outcome recorded), and valid ones pass."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from pathlib import Path

import aiohttp
import jwt
import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.integration.conftest import OutriderFactory, canary_yaml
from tests.support.http import scrape
from tests.support.procs import Proc

ISSUER, AUDIENCE = "https://issuer.test", "outrider-tests"


def token(key: rsa.RSAPrivateKey, sub: str, **over: object) -> str:
    now = int(time.time())
    claims: dict[str, object] = {
        "sub": sub,
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 300,
        **over,
    }
    return jwt.encode(claims, key, algorithm="RS256")


def hs_confusion(public_pem: bytes) -> str:
    """The classic RS→HS confusion token: HMAC keyed with the public key (PyJWT refuses to make it)."""
    header = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').rstrip(b"=")
    now = int(time.time())
    claims = {"sub": "a", "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 300}
    payload = base64.urlsafe_b64encode(orjson.dumps(claims)).rstrip(b"=")
    signature = hmac.new(public_pem, header + b"." + payload, hashlib.sha256).digest()
    return b".".join([header, payload, base64.urlsafe_b64encode(signature).rstrip(b"=")]).decode()


async def test_auth_and_rate_limits(
    upstreams: tuple[Proc, Proc], outrider: OutriderFactory, tmp_path: Path
) -> None:
    stable, candidate = upstreams
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = tmp_path / "public.pem"
    pem.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    config = canary_yaml(stable.url, candidate.url, unit="claim:sub")
    proxy = outrider(
        config,
        args=(
            "--auth-issuer",
            ISSUER,
            "--auth-audience",
            AUDIENCE,
            "--auth-keys",
            str(pem),
            "--auth-max-token-bytes",
            "4096",
            "--rate-limit",
            "2",
            "--rate-burst",
            "3",
            "--rate-key",
            "claim:sub",
        ),
    )
    url = f"{proxy.url}/v2/models/m/infer"
    async with aiohttp.ClientSession() as session:
        for bad in (
            None,
            "Basic abc",
            f"Bearer {token(key, 'a', exp=int(time.time()) - 3600)}",
            f"Bearer {token(key, 'a', aud='someone-else')}",
            "Bearer a.b.c",
            "Bearer " + jwt.encode({"sub": "a", "iss": ISSUER, "aud": AUDIENCE}, "", algorithm="none"),
            f"Bearer {token(key, 'a', iss='https://elsewhere.test')}",
            f"Bearer {token(key, 'a', pad='x' * 5000)}",  # oversized (> 4 KiB here)
            f"Bearer {token(other, 'a')}",  # signed by a key outrider does not know
            f"Bearer {jwt.encode({'sub': 'a'}, key, algorithm='RS256', headers={'kid': 'nope'})}",
            f"Bearer {hs_confusion(pem.read_bytes())}",  # HS256 keyed with the RSA public key
        ):
            headers = {} if bad is None else {"Authorization": bad}
            async with session.post(url, data=b"{}", headers=headers) as r:
                assert r.status == 401, bad
                assert r.headers["WWW-Authenticate"].startswith('Bearer realm="outrider"')
                assert (await r.json())["code"] == "unauthorized"
        alice = {"Authorization": f"Bearer {token(key, 'alice')}"}
        statuses = []
        for _ in range(5):
            async with session.post(url, data=b"{}", headers=alice) as r:
                statuses.append(r.status)
                if r.status == 429:
                    assert int(r.headers["Retry-After"]) >= 1
        assert statuses[:3] == [200, 200, 200]
        assert 429 in statuses[3:]
        bob = {"Authorization": f"Bearer {token(key, 'bob')}"}
        async with session.post(url, data=b"{}", headers=bob) as r:
            assert r.status == 200  # limits are per subject
        samples = await scrape(session, proxy.admin_url)
    # Only the answered requests were routed and recorded: refusals never reached an upstream.
    assert samples["outrider_outcomes_produced_total"] == statuses.count(200) + 1
