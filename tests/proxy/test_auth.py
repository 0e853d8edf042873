"""`auth` in isolation: good tokens set the principal; each bad one is a 401, next stage never run."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from multidict import CIMultiDict, CIMultiDictProxy

from proxy.auth.jwt_keys import KeyEntry, KeySet, StaticKeys
from proxy.auth.settings import AuthSettings
from proxy.dataplane.errors import Unauthorized
from proxy.dataplane.exchange import Exchange, Inbound, Reply
from proxy.filters.auth import Auth, _describe, _invalid

ISS = "https://issuer.test"
AUD = "outrider"
SECRET = b"s" * 32


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def rs_auth(rsa_key: rsa.RSAPrivateKey) -> Auth:
    keys = KeySet(default=KeyEntry(rsa_key.public_key()))
    return Auth(AuthSettings(("RS256",), ISS, AUD, keys))


def claims(**over: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {"sub": "u1", "iss": ISS, "aud": AUD, "iat": now, "exp": now + 300}
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


def pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs256_by_hand(payload: dict[str, Any], secret: bytes) -> str:
    """PyJWT refuses a PEM as an HMAC secret when signing, so the confusion token is forged by hand."""
    signing_input = (
        f"{b64(json.dumps({'alg': 'HS256', 'typ': 'JWT'}).encode())}.{b64(json.dumps(payload).encode())}"
    )
    sig = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(sig)}"


def exchange(authorization: str | list[str] | None) -> Exchange:
    headers: CIMultiDict[str] = CIMultiDict()
    values = [authorization] if isinstance(authorization, str) else authorization or []
    for value in values:
        headers.add("Authorization", value)
    inbound = Inbound(
        "POST", "/v2/models/m/infer", CIMultiDictProxy(headers), b"{}", "127.0.0.1", time.time(), 0.0, "r"
    )
    return Exchange(inbound)


class Terminal:
    """Records whether the chain got past `auth`."""

    def __init__(self) -> None:
        self.called = False

    async def __call__(self, ex: Exchange) -> Reply:
        self.called = True
        return Reply(200, CIMultiDict(), b"ok")


async def passes(auth: Auth, token: str) -> Exchange:
    ex, terminal = exchange(f"Bearer {token}"), Terminal()
    reply = await auth(ex, terminal)
    assert reply.status == 200
    assert terminal.called
    return ex


async def rejected(auth: Auth, authorization: str | list[str] | None) -> Unauthorized:
    ex, terminal = exchange(authorization), Terminal()
    with pytest.raises(Unauthorized) as caught:
        await auth(ex, terminal)
    assert not terminal.called
    assert ex.principal is None
    assert caught.value.status == 401
    assert caught.value.headers["WWW-Authenticate"].startswith('Bearer realm="outrider"')
    return caught.value


def challenge(exc: Unauthorized) -> str:
    return exc.headers["WWW-Authenticate"]


async def test_valid_rs256_sets_principal(rs_auth: Auth, rsa_key: rsa.RSAPrivateKey) -> None:
    ex = await passes(rs_auth, jwt.encode(claims(), rsa_key, algorithm="RS256"))
    assert ex.principal is not None
    assert ex.principal["sub"] == "u1"


async def test_valid_hs256_with_hs_config() -> None:
    auth = Auth(AuthSettings(("HS256",), ISS, AUD, KeySet.from_secret(SECRET)))
    ex = await passes(auth, jwt.encode(claims(), SECRET, algorithm="HS256"))
    assert ex.principal is not None
    assert ex.principal["iss"] == ISS


async def test_iat_slightly_ahead_is_within_leeway(rs_auth: Auth, rsa_key: rsa.RSAPrivateKey) -> None:
    await passes(rs_auth, jwt.encode(claims(iat=int(time.time()) + 10), rsa_key, algorithm="RS256"))


@pytest.mark.parametrize(
    ("over", "description"),
    [
        pytest.param({"exp": -1000}, "token expired", id="expired"),
        pytest.param({"iat": 3600}, "token not yet valid", id="iat-in-future"),
        pytest.param({"nbf": 3600}, "token not yet valid", id="nbf-in-future"),
        pytest.param({"exp": None}, "missing required claim exp", id="missing-exp"),
        pytest.param({"iat": None}, "missing required claim iat", id="missing-iat"),
        pytest.param({"aud": "someone-else"}, "wrong audience", id="wrong-aud"),
        pytest.param({"iss": "https://evil.test"}, "wrong issuer", id="wrong-iss"),
        pytest.param({"iss": None}, "missing required claim iss", id="missing-iss"),
    ],
)
async def test_bad_claims_are_401(
    rs_auth: Auth, rsa_key: rsa.RSAPrivateKey, over: dict[str, Any], description: str
) -> None:
    now = int(time.time())
    shifted = {k: (now + v if k in ("exp", "iat", "nbf") and v is not None else v) for k, v in over.items()}
    exc = await rejected(rs_auth, f"Bearer {jwt.encode(claims(**shifted), rsa_key, algorithm='RS256')}")
    assert f'error_description="{description}"' in challenge(exc)
    assert 'error="invalid_token"' in challenge(exc)


async def test_alg_none_is_401(rs_auth: Auth) -> None:
    token = f"{b64(json.dumps({'alg': 'none', 'typ': 'JWT'}).encode())}.{b64(json.dumps(claims()).encode())}."
    exc = await rejected(rs_auth, f"Bearer {token}")
    assert "algorithm not allowed" in challenge(exc)


async def test_hs_rs_confusion_is_401(rs_auth: Auth, rsa_key: rsa.RSAPrivateKey) -> None:
    token = hs256_by_hand(claims(), pem(rsa_key))
    exc = await rejected(rs_auth, f"Bearer {token}")
    assert "algorithm not allowed" in challenge(exc)


async def test_signed_by_another_key_is_401(rs_auth: Auth) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    exc = await rejected(rs_auth, f"Bearer {jwt.encode(claims(), other, algorithm='RS256')}")
    assert "bad signature" in challenge(exc)


async def test_tampered_payload_is_401(rs_auth: Auth, rsa_key: rsa.RSAPrivateKey) -> None:
    head, _, sig = jwt.encode(claims(), rsa_key, algorithm="RS256").split(".")
    forged = b64(json.dumps(claims(sub="admin")).encode())
    exc = await rejected(rs_auth, f"Bearer {head}.{forged}.{sig}")
    assert "bad signature" in challenge(exc)


async def test_jwks_picks_by_kid_and_refuses_unknown_kid(rsa_key: rsa.RSAPrivateKey) -> None:
    jwk = RSAAlgorithm.to_jwk(rsa_key.public_key(), as_dict=True)
    keys = KeySet.from_jwks({"keys": [{**jwk, "kid": "k1", "use": "sig"}]}, ("RS256",))
    auth = Auth(AuthSettings(("RS256",), ISS, AUD, keys))
    await passes(auth, jwt.encode(claims(), rsa_key, algorithm="RS256", headers={"kid": "k1"}))
    exc = await rejected(auth, f"Bearer {jwt.encode(claims(), rsa_key, 'RS256', headers={'kid': 'k2'})}")
    assert "unknown key id" in challenge(exc)
    no_kid = jwt.encode(claims(), rsa_key, algorithm="RS256")
    assert "unknown key id" in challenge(await rejected(auth, f"Bearer {no_kid}"))


async def test_jwk_alg_pins_the_key(rsa_key: rsa.RSAPrivateKey) -> None:
    jwk = RSAAlgorithm.to_jwk(rsa_key.public_key(), as_dict=True)
    keys = KeySet.from_jwks({"keys": [{**jwk, "kid": "k1", "alg": "RS512"}]}, ("RS256", "RS512"))
    auth = Auth(AuthSettings(("RS256", "RS512"), ISS, AUD, keys))
    token = jwt.encode(claims(), rsa_key, algorithm="RS256", headers={"kid": "k1"})
    assert "key is not for this algorithm" in challenge(await rejected(auth, f"Bearer {token}"))


@pytest.mark.parametrize("token", ["abc", "a.b.c", "a.b", "..", "not a token", "x" * 20 + "!"])
async def test_malformed_token_is_401(rs_auth: Auth, token: str) -> None:
    exc = await rejected(rs_auth, f"Bearer {token}")
    assert "malformed token" in challenge(exc)


async def test_oversized_token_is_401(rsa_key: rsa.RSAPrivateKey) -> None:
    keys = KeySet(default=KeyEntry(rsa_key.public_key()))
    auth = Auth(AuthSettings(("RS256",), ISS, AUD, keys, max_token_bytes=512))
    token = jwt.encode(claims(pad="x" * 600), rsa_key, algorithm="RS256")
    assert "token too large" in challenge(await rejected(auth, f"Bearer {token}"))


@pytest.mark.parametrize("authorization", [None, "Basic dXNlcjpwYXNz", "Token abc"])
async def test_no_bearer_credentials_is_bare_challenge(rs_auth: Auth, authorization: str | None) -> None:
    exc = await rejected(rs_auth, authorization)
    assert challenge(exc) == 'Bearer realm="outrider"'


@pytest.mark.parametrize("authorization", ["Bearer", "Bearer ", ["Bearer a.b.c", "Bearer d.e.f"]])
async def test_empty_or_repeated_bearer_is_invalid(rs_auth: Auth, authorization: str | list[str]) -> None:
    exc = await rejected(rs_auth, authorization)
    assert 'error="invalid_token"' in challenge(exc)


async def test_bearer_scheme_is_case_insensitive(rs_auth: Auth, rsa_key: rsa.RSAPrivateKey) -> None:
    ex, terminal = exchange(f"bearer {jwt.encode(claims(), rsa_key, algorithm='RS256')}"), Terminal()
    await rs_auth(ex, terminal)
    assert terminal.called


def test_error_description_never_breaks_the_quoted_string() -> None:
    exc = jwt.MissingRequiredClaimError('ev"il\\')
    assert 'error_description="missing required claim evil"' in challenge(_invalid(_describe(exc)))


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        pytest.param({"algorithms": ("HS256", "RS256")}, "mixes", id="mixed-families"),
        pytest.param({"algorithms": ("RS256", "ES256", "HS512")}, "mixes", id="mixed-three"),
        pytest.param({"algorithms": ("none",)}, "none", id="alg-none"),
        pytest.param({"algorithms": ("RS256", "None")}, "none", id="alg-none-mixed-case"),
        pytest.param({"algorithms": ()}, "at least one", id="empty"),
        pytest.param({"algorithms": ("RS1",)}, "unknown", id="unknown-alg"),
        pytest.param({"leeway_s": 120.0}, "leeway", id="leeway-120"),
        pytest.param({"leeway_s": -1.0}, "leeway", id="leeway-negative"),
        pytest.param({"max_token_bytes": 0}, "max_token_bytes", id="no-size"),
        pytest.param({"issuer": ""}, "issuer", id="no-issuer"),
        pytest.param({"required_claims": ("iss", "aud")}, "required_claims", id="exp-not-required"),
        pytest.param({"keys": KeySet.from_secret(SECRET)}, "wrong family", id="secret-for-rs"),
        pytest.param({"keys": KeySet()}, "no keys", id="empty-keyset"),
    ],
)
def test_settings_validation(rsa_key: rsa.RSAPrivateKey, kw: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {
        "algorithms": ("RS256",),
        "issuer": ISS,
        "audience": AUD,
        "keys": KeySet(default=KeyEntry(rsa_key.public_key())),
    }
    with pytest.raises(ValueError, match=message):
        AuthSettings(**(args | kw))


async def test_from_file_pem_secret_and_jwks(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    (tmp_path / "pub.pem").write_bytes(pem(rsa_key))
    (tmp_path / "secret").write_bytes(SECRET)
    jwk = RSAAlgorithm.to_jwk(rsa_key.public_key(), as_dict=True)
    (tmp_path / "jwks.json").write_text(
        json.dumps({"keys": [{**jwk, "kid": "k1"}, {"kty": "x", "use": "enc"}]})
    )

    from_pem = Auth(AuthSettings(("RS256",), ISS, AUD, KeySet.from_file(tmp_path / "pub.pem", ("RS256",))))
    await passes(from_pem, jwt.encode(claims(), rsa_key, algorithm="RS256", headers={"kid": "any"}))
    jwks = KeySet.from_file(tmp_path / "jwks.json", ("RS256",))
    assert set(jwks.by_kid) == {"k1"}
    secret = KeySet.from_file(tmp_path / "secret", ("HS256",))
    assert secret.default == KeyEntry(SECRET)


def test_from_file_refusals(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    (tmp_path / "pub.pem").write_bytes(pem(rsa_key))
    private = rsa_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (tmp_path / "priv.pem").write_bytes(private)
    (tmp_path / "short").write_bytes(b"too-short")
    (tmp_path / "oct.json").write_text(json.dumps({"keys": [{"kty": "oct", "k": b64(SECRET)}]}))
    with pytest.raises(ValueError, match="HMAC secret"):
        KeySet.from_file(tmp_path / "pub.pem", ("HS256",))
    with pytest.raises(ValueError, match="private key"):
        KeySet.from_file(tmp_path / "priv.pem", ("RS256",))
    with pytest.raises(ValueError, match="at least 32"):
        KeySet.from_file(tmp_path / "short", ("HS256",))
    with pytest.raises(ValueError, match="PEM public key or a JWKS"):
        KeySet.from_file(tmp_path / "short", ("RS256",))
    with pytest.raises(ValueError, match="does not fit"):
        KeySet.from_file(tmp_path / "oct.json", ("RS256",))


async def test_the_fast_path_answers_only_a_token_verified_before_by_a_key_still_current(
    rs_auth: Auth, rsa_key: rsa.RSAPrivateKey
) -> None:
    token = jwt.encode(claims(), rsa_key, algorithm="RS256")
    assert rs_auth.enter(exchange(f"Bearer {token}")) is False  # never verified: the task path verifies it
    await passes(rs_auth, token)
    ex = exchange(f"bearer  {token} ")  # the same bytes, as `_bearer_token` reads them
    assert rs_auth.enter(ex) is True
    assert ex.principal is not None
    assert ex.principal["sub"] == "u1"
    for bad in (None, [f"Bearer {token}", f"Bearer {token}"], f"Basic {token}", "Bearer not a token"):
        with pytest.raises(Unauthorized):  # refused on the headers, cached token or not
            rs_auth.enter(exchange(bad))
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rs_auth.keys = StaticKeys(KeySet(default=KeyEntry(other.public_key())))  # the key was replaced
    assert rs_auth.enter(exchange(f"Bearer {token}")) is False
    await rejected(rs_auth, f"Bearer {token}")
