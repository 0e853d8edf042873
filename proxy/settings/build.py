"""From validated sidecar settings (proxy.settings.model) to the `Settings` the server runs with: keeps them
as they are and adds only what is derived from them: addresses parsed, the key, token and secret files read,
the auth, rate-limit and shadow settings built from their sections. Every problem exits 2 with a message.

Usage: `settings = sidecar_settings(resolved.settings, experiments, files)`
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from experiments.model import Experiment
    from proxy.auth.settings import AuthSettings
    from proxy.ratelimit.settings import RateLimitSettings
    from proxy.settings import Settings
    from proxy.settings.model import Auth, RateLimit, Shadows, SidecarFile, Webhook
    from shadow.limits import ShadowLimits


def parse_hostport(value: str, flag: str) -> tuple[str, int]:
    """`HOST:PORT` or `[V6]:PORT` → (host, port); SystemExit(2) with a clear message otherwise."""
    host, sep, port = value.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        print(f"outrider: {flag} {value!r}: expected HOST:PORT", file=sys.stderr)
        raise SystemExit(2)
    return host, int(port)


def admin_token(path: str | None) -> str | None:
    """The token from `--admin-token-file`, else $OUTRIDER_ADMIN_TOKEN, else None (mutations refused)."""
    if path is not None:
        token = Path(path).read_text().strip()
        if not token:
            print(f"outrider: --admin-token-file {path} is empty", file=sys.stderr)
            raise SystemExit(2)
        return token
    return os.environ.get("OUTRIDER_ADMIN_TOKEN") or None


def webhook_secret(section: Webhook) -> str | None:
    """The secret read from `webhook.secretFile` (None without one), once the URL is checked; exit 2 when
    unusable."""
    from proxy.control.webhook import check_url

    url, secret_file = section.url, section.secret_file
    try:
        if url is None and secret_file is not None:
            raise ValueError("--webhook-secret-file needs --webhook-url")
        secret = Path(secret_file).read_text().strip() if secret_file is not None else None
        if secret == "":
            raise ValueError(f"--webhook-secret-file {secret_file} is empty")
        if url is not None:
            check_url(url)
        return secret
    except (ValueError, OSError) as err:
        print(f"outrider run: webhook: {err}", file=sys.stderr)
        raise SystemExit(2) from None


def feedback_secret(path: str | None) -> bytes | None:
    """The key of the feedback tokens from `--feedback-secret-file` (None: the data dir's); exit 2 if bad."""
    from proxy.feedback.token import read_secret

    if path is None:
        return None
    try:
        return read_secret(Path(path))
    except (ValueError, OSError) as err:
        print(f"outrider run: --feedback-secret-file: {err}", file=sys.stderr)
        raise SystemExit(2) from None


def auth_settings(section: Auth) -> AuthSettings | None:
    """JWT auth from the `auth` section (None when no issuer is given); exit 2 on a bad combination.

    Keys come from exactly one of `keys` (a file, read now) and `jwksUrl` (fetched by the server).
    """
    from proxy.auth.jwt_keys import KeySet
    from proxy.auth.settings import AuthSettings

    if not section.issuer:
        return None
    algorithms = tuple(a.strip() for entry in section.algorithms for a in entry.split(",") if a.strip())
    jwks_url = section.jwks_url or None
    try:
        if not section.audience or bool(section.keys) == bool(jwks_url):
            raise ValueError("--auth-issuer needs --auth-audience and one of --auth-keys or --auth-jwks-url")
        keys = KeySet.from_file(Path(section.keys), algorithms) if section.keys else None
        return AuthSettings(
            algorithms,
            section.issuer,
            section.audience,
            keys,
            leeway_s=section.leeway,
            jwks_url=jwks_url,
            max_token_bytes=section.max_token_bytes,
        )
    except (ValueError, OSError) as err:
        print(f"outrider run: auth: {err}", file=sys.stderr)
        raise SystemExit(2) from None


def rate_limit_settings(section: RateLimit) -> RateLimitSettings | None:
    """GCRA limits from the `rateLimit` section (None when its rate is 0), in memory or in a shared Redis;
    exit 2 when invalid."""
    from proxy.ratelimit.settings import RateLimitSettings

    if not section.rate:
        return None
    try:
        return RateLimitSettings(
            section.rate,
            section.burst,
            section.key,
            store=section.store,
            redis_url=section.redis_url,
            on_store_error=section.on_store_error,
            redis_timeout_s=section.redis_timeout,
        )
    except ValueError as err:
        print(f"outrider run: rate limit: {err}", file=sys.stderr)
        raise SystemExit(2) from None


def sidecar_settings(conf: SidecarFile, experiments: list[Experiment], files: list[str]) -> Settings:
    """The server's Settings: `conf` itself, and what is derived from it (addresses parsed; the key, token
    and secret files read; exit 2 if unusable)."""
    from proxy.settings import Settings

    hook_secret = webhook_secret(conf.webhook)  # the first checked: its problem is the one reported
    return Settings(
        conf=conf,
        experiments=experiments,
        config_files=files,
        listen=parse_hostport(conf.listen, "--listen"),
        admin=parse_hostport(conf.admin, "--admin"),
        grpc_listen=parse_hostport(conf.grpc_listen, "--grpc-listen") if conf.grpc_listen else None,
        admin_token=admin_token(conf.admin_token_file),
        auth=auth_settings(conf.auth),
        rate_limit=rate_limit_settings(conf.rate_limit),
        webhook_secret=hook_secret,
        feedback_secret=feedback_secret(conf.feedback.secret_file),
        shadow_limits=shadow_limits(conf.shadows),
    )


def shadow_limits(s: Shadows) -> ShadowLimits:
    """The shadow dispatcher's and compare pool's bounds from the `shadows` section."""
    from shadow.limits import CompareLimits, ShadowLimits

    compare = CompareLimits(s.compare_inline_bytes, s.compare_queue, s.compare_workers, s.compare_mode)
    return ShadowLimits(
        queue=s.queue,
        workers=s.workers,
        breaker_failures=s.breaker_failures,
        breaker_open_s=s.breaker_open,
        compare=compare,
    )
