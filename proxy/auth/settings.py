"""What a token must satisfy (algorithms, issuer, audience, keys or a JWKS URL, leeway); checked once here so
that the request path only verifies (the settings file is checked by proxy.settings.model first).

Usage: AuthSettings(("RS256",), "https://issuer", "outrider", KeySet.from_file(path, ("RS256",)))
"""

from __future__ import annotations

from dataclasses import dataclass

from proxy.auth.jwt_keys import ASYMMETRIC_ALGORITHMS, HMAC_ALGORITHMS, KNOWN_ALGORITHMS, KeySet
from proxy.settings.model import Auth

_DEFAULT = Auth()
"""The `auth` section's defaults (proxy.settings.model declares them): these settings' defaults too."""

MAX_LEEWAY_S = 60.0
ALWAYS_REQUIRED = ("exp", "iat", "iss", "aud")


@dataclass(frozen=True, slots=True)
class AuthSettings:
    """What a token must satisfy; checked once here so the request path only verifies."""

    algorithms: tuple[str, ...]
    """Allowlist; one family only (HS* or asymmetric), never "none"."""
    issuer: str
    """Exact match against `iss`."""
    audience: str
    keys: KeySet | None
    """Keys loaded at start-up; None when they come from `jwks_url`."""
    leeway_s: float = _DEFAULT.leeway
    """Clock skew tolerated on exp/iat/nbf; at most 60 s."""
    max_token_bytes: int = _DEFAULT.max_token_bytes
    required_claims: tuple[str, ...] = ALWAYS_REQUIRED
    jwks_url: str | None = None
    """Fetch keys from this JWKS URL instead (asymmetric algorithms only); exactly one of keys/jwks_url."""

    def __post_init__(self) -> None:
        algs = set(self.algorithms)
        if not algs:
            raise ValueError("auth.algorithms must name at least one algorithm")
        if any(alg.lower() == "none" for alg in algs):
            raise ValueError('auth.algorithms must never allow "none"')
        if unknown := sorted(algs - KNOWN_ALGORITHMS):
            raise ValueError(f"auth.algorithms: unknown {unknown}; known: {sorted(KNOWN_ALGORITHMS)}")
        if algs & HMAC_ALGORITHMS and algs & ASYMMETRIC_ALGORITHMS:
            raise ValueError("auth.algorithms mixes HS* with asymmetric algorithms (key confusion risk)")
        if not 0 <= self.leeway_s <= MAX_LEEWAY_S:
            raise ValueError(f"auth.leeway_s must be within 0..{MAX_LEEWAY_S:g}, got {self.leeway_s:g}")
        if self.max_token_bytes <= 0:
            raise ValueError("auth.max_token_bytes must be positive")
        if not self.issuer or not self.audience:
            raise ValueError("auth.issuer and auth.audience must be set")
        if missing := [c for c in ALWAYS_REQUIRED if c not in self.required_claims]:
            raise ValueError(f"auth.required_claims must include {missing}")
        if (self.keys is None) == (self.jwks_url is None):
            raise ValueError("auth needs exactly one of keys (a file) and jwks_url")
        if self.keys is not None:
            self._check_key_family(self.keys, bool(algs & HMAC_ALGORITHMS))
        elif algs & HMAC_ALGORITHMS:
            raise ValueError("auth.jwks_url serves public keys: HS* secrets must not be fetched over HTTP")
        elif not (self.jwks_url or "").startswith(("https://", "http://")):
            raise ValueError(f"auth.jwks_url must be an http(s) URL, got {self.jwks_url!r}")

    @staticmethod
    def _check_key_family(keys: KeySet, hmac: bool) -> None:
        entries = [*keys.by_kid.values(), *([keys.default] if keys.default else [])]
        if not entries:
            raise ValueError("auth.keys holds no keys")
        if any(isinstance(e.key, bytes) != hmac for e in entries):
            raise ValueError("auth.keys holds keys of the wrong family for auth.algorithms")
