"""Which request headers are credentials, so that copies for shadows can go without them.

Usage: strip_credentials(headers, allowed=spec.forward_headers)  # in place; returns the names removed

A shadow is a model version under evaluation: it may log what it receives, run third-party code, or sit in a
less trusted place than the primary. It needs the input, not the client's identity, so every credential the
client sent stays with the primary unless the experiment names the header in `spec.shadow.forwardHeaders`.
Credentials are recognised by name: the well-known ones exactly, and any name with a word (between `-`, `_`
or `.`) that only credentials use — `auth*`, `token`, `key`, `secret`, `session`, `cookie`, ... — so that
`X-Api-Key`, `X-Amz-Security-Token` or `X-Tenant-Secret` are caught without being listed. Removing a
harmless header (`Idempotency-Key`) by mistake costs nothing; forwarding a secret cannot be undone.
"""

from __future__ import annotations

import re
from collections.abc import Collection

from multidict import CIMultiDict

CREDENTIAL_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "apikey",
        "x-apikey",
        "dpop",
    }
)
"""Credential headers whose names carry none of `CREDENTIAL_WORDS`."""
CREDENTIAL_WORDS = frozenset(
    {
        "token",
        "key",
        "apikey",
        "secret",
        "password",
        "passwd",
        "credential",
        "credentials",
        "cookie",
        "session",
        "sid",
        "jwt",
        "bearer",
        "csrf",
        "xsrf",
        "signature",
        "principal",
    }
)
"""Words of a header name that make it a credential (besides any word starting with `auth`)."""
_WORD = re.compile(r"[-_.]")


def is_credential(name: str) -> bool:
    """Whether the header called `name` may carry a credential (or the identity a credential proved)."""
    lower = name.lower()
    if lower in CREDENTIAL_HEADERS:
        return True
    return any(word in CREDENTIAL_WORDS or word.startswith("auth") for word in _WORD.split(lower))


def strip_credentials(headers: CIMultiDict[str], allowed: Collection[str] = ()) -> list[str]:
    """Remove every credential header not in `allowed` (lower-case names); the names removed, lower case."""
    removed = sorted({k.lower() for k in headers if is_credential(k) and k.lower() not in allowed})
    for name in removed:
        headers.popall(name, None)
    return removed
