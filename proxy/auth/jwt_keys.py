"""Verification keys for the `auth` filter, held by `kid`, loaded once at start-up.

Usage: keys = KeySet.from_file("issuer.pem", algorithms=("RS256",)); entry = keys.find(kid)
Keys that change at run time come from a JWKS URL instead (`proxy.auth.jwks_fetch.JwksKeys`, a `KeySource`).

A key file is one of: a PEM public key, a JWKS document (`{"keys": [...]}`), or a raw HMAC secret (only
when the allowlist is HS*). Keys of the wrong family for the allowlist are refused here, so the filter never
holds a key an algorithm-confusion token could be checked against. Reads block: call this at start-up only.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import jwt
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.ed448 import Ed448PublicKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

HMAC_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})
ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
KNOWN_ALGORITHMS = HMAC_ALGORITHMS | ASYMMETRIC_ALGORITHMS
MIN_HMAC_SECRET_BYTES = 32
"""RFC 7518 §3.2: an HS256 key must be at least as long as the hash output."""

VerifyKey = bytes | RSAPublicKey | EllipticCurvePublicKey | Ed25519PublicKey | Ed448PublicKey
_PUBLIC_KEY_TYPES = (RSAPublicKey, EllipticCurvePublicKey, Ed25519PublicKey, Ed448PublicKey)


def is_hmac(algorithms: Iterable[str]) -> bool:
    """True when every algorithm is HS*; callers have already refused mixed allowlists."""
    return all(alg in HMAC_ALGORITHMS for alg in algorithms)


@dataclass(frozen=True, slots=True)
class KeyEntry:
    """One verification key; `alg` pins it to a single algorithm when the JWK said so."""

    key: VerifyKey
    alg: str | None = None


class KeySource(Protocol):
    """Where the `auth` filter gets keys: a `KeySet` loaded at start-up (`StaticKeys`) or a JWKS URL."""

    async def find(self, kid: str | None) -> KeyEntry | None:
        """The key for `kid`, or None when there is none."""
        ...

    def peek(self, kid: str | None) -> KeyEntry | None:
        """`find` when it can answer without waiting; None otherwise (then `find`)."""
        ...


@dataclass(frozen=True, slots=True)
class KeySet:
    """Keys by `kid`, plus at most one default key for tokens (or key sets) without a `kid`."""

    by_kid: Mapping[str, KeyEntry] = field(default_factory=dict)
    default: KeyEntry | None = None

    def find(self, kid: str | None) -> KeyEntry | None:
        """The key for `kid`, or None when the token names a key this set does not hold.

        A set with no kids at all (one PEM or secret) answers every token with its default key: the issuer may
        still label its tokens, but there is nothing to choose between.
        """
        if kid is not None and self.by_kid:
            return self.by_kid.get(kid)
        return self.default

    @classmethod
    def from_file(cls, path: str | Path, algorithms: Iterable[str]) -> KeySet:
        """Load a PEM public key, a JWKS document or (HS* allowlists only) a raw secret."""
        algs = tuple(algorithms)
        raw = Path(path).read_bytes()
        stripped = raw.strip()
        if stripped.startswith(b"{"):
            return cls.from_jwks(json.loads(stripped), algs)
        if is_hmac(algs):
            if b"-----BEGIN" in stripped:
                raise ValueError(f"{path}: a PEM key cannot be an HMAC secret (allowlist is {algs})")
            return cls.from_secret(raw)
        if b"-----BEGIN" not in stripped:
            raise ValueError(f"{path}: expected a PEM public key or a JWKS for {algs}")
        if b"PRIVATE KEY" in stripped:
            raise ValueError(f"{path}: holds a private key; give outrider the public key only")
        key = load_pem_public_key(stripped)
        if not isinstance(key, _PUBLIC_KEY_TYPES):
            raise ValueError(f"{path}: {type(key).__name__} cannot verify JWTs")
        return cls(default=KeyEntry(key))

    @classmethod
    def from_secret(cls, secret: bytes) -> KeySet:
        """A one-key set for HS* tokens."""
        if len(secret) < MIN_HMAC_SECRET_BYTES:
            raise ValueError(f"HMAC secret is {len(secret)} bytes; at least {MIN_HMAC_SECRET_BYTES} needed")
        return cls(default=KeyEntry(secret))

    @classmethod
    def from_jwks(cls, doc: Any, algorithms: Iterable[str]) -> KeySet:
        """Signing keys of a JWKS document; encryption keys (`use: enc`) are skipped."""
        if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
            raise ValueError('a JWKS must be an object with a "keys" list')
        hmac_only = is_hmac(algorithms)
        by_kid: dict[str, KeyEntry] = {}
        unnamed: list[KeyEntry] = []
        for n, jwk_data in enumerate(doc["keys"]):
            if not isinstance(jwk_data, dict) or jwk_data.get("use", "sig") != "sig":
                continue
            if (jwk_data.get("kty") == "oct") != hmac_only:
                raise ValueError(f"JWKS key {n}: kty {jwk_data.get('kty')!r} does not fit the allowlist")
            try:
                entry = KeyEntry(jwt.PyJWK(jwk_data).key, jwk_data.get("alg"))
            except jwt.PyJWTError as exc:
                raise ValueError(f"JWKS key {n}: {exc}") from exc
            if isinstance(entry.key, bytes) and len(entry.key) < MIN_HMAC_SECRET_BYTES:
                raise ValueError(f"JWKS key {n}: HMAC secret shorter than {MIN_HMAC_SECRET_BYTES} bytes")
            kid = jwk_data.get("kid")
            if isinstance(kid, str):
                by_kid[kid] = entry
            else:
                unnamed.append(entry)
        if len(unnamed) > 1:
            raise ValueError("JWKS holds more than one key without a kid: tokens could not pick one")
        if not by_kid and not unnamed:
            raise ValueError("JWKS holds no signing keys")
        return cls(by_kid=by_kid, default=unnamed[0] if unnamed else None)


@dataclass(frozen=True, slots=True)
class StaticKeys:
    """A `KeySet` as a `KeySource`: the keys never change."""

    keys: KeySet

    async def find(self, kid: str | None) -> KeyEntry | None:
        """`KeySet.find`."""
        return self.keys.find(kid)

    def peek(self, kid: str | None) -> KeyEntry | None:
        """`find` without a coroutine."""
        return self.keys.find(kid)
