"""The auth target's credentials: an RSA key pair made for the run, the public key for outrider, one token.

Usage: kit = AuthKit.make(tmp / "auth"); outrider run ... *kit.flags(); wrk/hey send `Authorization: Bearer
kit.token`.
The rate limit is keyed by the token's subject and set far above what the machine can send, so that it is
paid for on every request and never refuses one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

ISSUER = "https://bench.outrider.invalid"
AUDIENCE = "outrider-bench"


@dataclass(frozen=True, slots=True)
class AuthKit:
    """Where the public key is, and a token valid for the whole run."""

    public_key: Path
    token: str

    @staticmethod
    def make(root: Path, hours: float = 2.0) -> AuthKit:
        """A fresh RS256 key pair under `root` and a token signed with it."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        root.mkdir(parents=True, exist_ok=True)
        public = root / "public.pem"
        public.write_bytes(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        now = int(time.time())
        claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "bench", "iat": now, "exp": now + int(hours * 3600)}
        return AuthKit(public, jwt.encode(claims, key, algorithm="RS256"))

    def flags(self) -> list[str]:
        """`outrider run` flags: JWT verification with this key, and a never-refusing rate limit."""
        return [
            "--auth-issuer", ISSUER, "--auth-audience", AUDIENCE, "--auth-keys", str(self.public_key),
            "--auth-algorithms", "RS256",
            "--rate-limit", "1000000", "--rate-burst", "1000000", "--rate-key", "claim:sub",
        ]  # fmt: skip
