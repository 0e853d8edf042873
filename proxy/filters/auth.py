"""`auth`: verify the `Authorization: Bearer` JWT (RFC 8725 rules) and set `ex.principal` to its claims.

Usage: Auth(AuthSettings(("RS256",), "https://issuer", "outrider", KeySet.from_file(path, ("RS256",))))
   or: Auth(AuthSettings(("RS256",), iss, aud, None, jwks_url=url), JwksKeys(url, ("RS256",)))
Every failure is a 401 with `WWW-Authenticate`, raised before any later filter (or the upstream) runs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import jwt

from proxy.auth.jwt_keys import (
    KeyEntry,
    KeySource,
    StaticKeys,
)
from proxy.auth.settings import AuthSettings
from proxy.auth.token_cache import TokenCache
from proxy.dataplane.chain import Stage
from proxy.dataplane.errors import Unauthorized
from proxy.dataplane.exchange import Exchange, Reply

REALM = 'Bearer realm="outrider"'
_TOKEN68 = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_UNSAFE_IN_QUOTES = re.compile(r'[^\x20-\x7e]|["\\]')

# Our own wording, most specific first: PyJWT's messages may quote claim values back, which a header must not.
_DESCRIPTIONS: tuple[tuple[type[jwt.PyJWTError], str], ...] = (
    (jwt.ExpiredSignatureError, "token expired"),
    (jwt.ImmatureSignatureError, "token not yet valid"),
    (jwt.InvalidAudienceError, "wrong audience"),
    (jwt.InvalidIssuerError, "wrong issuer"),
    (jwt.InvalidIssuedAtError, "iat is not a number"),
    (jwt.InvalidSignatureError, "bad signature"),
    (jwt.DecodeError, "malformed token"),
    (jwt.InvalidKeyError, "key does not fit the algorithm"),
)


class Auth:
    """Verifies the bearer JWT; sets `ex.principal` to its claims (read-only) or raises Unauthorized.

    `keys` is required when the settings name a `jwks_url` (the server owns the fetcher's lifecycle).
    """

    def __init__(self, settings: AuthSettings, keys: KeySource | None = None) -> None:
        self.settings = settings
        if keys is None:
            if settings.keys is None:
                raise ValueError("auth.jwks_url needs its key source (JwksKeys) passed to Auth")
            keys = StaticKeys(settings.keys)
        self.keys = keys
        self.verified = TokenCache(settings.leeway_s)
        """Tokens verified earlier (the signature check is most of the filter's cost)."""

    async def __call__(self, ex: Exchange, call_next: Stage) -> Reply:
        """Set `ex.principal`, then continue."""
        token = self._bearer_token(ex.inbound.headers.getall("Authorization", []))
        ex.principal = await self.verify(token)
        return await call_next(ex)

    def enter(self, ex: Exchange) -> bool:
        """A token verified before, whose key is still current, without a coroutine (False: verify it)."""
        values = ex.inbound.headers.getall("Authorization", [])
        cached = self.verified.get(_bearer_as_sent(values[0])) if len(values) == 1 else None
        if cached is not None and self.keys.peek(cached.key_id) is cached.key:
            ex.principal = cached.claims  # the same bytes passed every check of `_bearer_token` before
            return True
        self._bearer_token(values)  # a malformed header is refused here, on the headers alone
        return False  # not verified yet, or by a key no longer current: `verify` on the task path

    async def verify(self, token: str) -> Mapping[str, Any]:
        """The token's verified claims; raises Unauthorized on any failure."""
        cached = self.verified.get(token)
        if cached is not None and await self.keys.find(cached.key_id) is cached.key:
            return cached.claims
        s = self.settings
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise _invalid("malformed token") from exc
        # The allowlist is checked before any key is touched: the header is attacker-controlled.
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in s.algorithms:
            raise _invalid("algorithm not allowed")
        kid = header.get("kid")
        entry = await self.keys.find(kid if isinstance(kid, str) else None)
        if entry is None:
            # Also when the key set could not be fetched: a key problem is the token's 401, never a 5xx.
            raise _invalid("unknown key id")
        claims = self._decode(token, alg, entry)
        self.verified.put(token, claims, kid if isinstance(kid, str) else None, entry)
        return claims

    def _decode(self, token: str, alg: str, entry: KeyEntry) -> Mapping[str, Any]:
        s = self.settings
        if entry.alg is not None and entry.alg != alg:
            raise _invalid("key is not for this algorithm")
        try:
            claims = jwt.decode(
                token,
                entry.key,
                algorithms=[alg],
                audience=s.audience,
                issuer=s.issuer,
                leeway=s.leeway_s,
                options={"require": list(s.required_claims), "enforce_minimum_key_length": True},
            )
        except jwt.PyJWTError as exc:
            raise _invalid(_describe(exc)) from exc
        return MappingProxyType(claims)

    def _bearer_token(self, values: list[str]) -> str:
        if not values:
            raise Unauthorized("missing bearer token", headers={"WWW-Authenticate": REALM})
        if len(values) > 1:
            raise _invalid("more than one Authorization header")
        scheme, _, token = values[0].strip().partition(" ")
        if scheme.lower() != "bearer":
            # RFC 6750 §3.1: no error code when the request carries no credentials for this scheme.
            raise Unauthorized("authorization scheme is not Bearer", headers={"WWW-Authenticate": REALM})
        token = token.strip(" ")
        if len(token) > self.settings.max_token_bytes:
            raise _invalid("token too large")
        if not _TOKEN68.fullmatch(token):
            raise _invalid("malformed token")
        return token


def _bearer_as_sent(value: str) -> str:
    """The token of `Bearer TOKEN` as `_bearer_token` would take it, unchecked (for the cache lookup: only a
    token that passed the checks is ever in the cache), or "" for another scheme."""
    scheme, _, token = value.strip().partition(" ")
    return token.strip(" ") if scheme.lower() == "bearer" else ""


def _describe(exc: jwt.PyJWTError) -> str:
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"missing required claim {exc.claim}"
    for kind, text in _DESCRIPTIONS:
        if isinstance(exc, kind):
            return text
    return "invalid token"


def _invalid(description: str) -> Unauthorized:
    safe = _UNSAFE_IN_QUOTES.sub("", description)
    challenge = f'{REALM}, error="invalid_token", error_description="{safe}"'
    return Unauthorized(description, headers={"WWW-Authenticate": challenge})
