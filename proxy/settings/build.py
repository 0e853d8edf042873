"""From validated sidecar settings (proxy.settings.model) to the `Settings` the server runs with: reads the
key, token and secret files and builds the auth and rate-limit settings. Every problem exits 2 with a message.

Usage: `settings = sidecar_settings(resolved.settings, experiments, files)`
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from experiments.model import Experiment
    from proxy.auth.settings import AuthSettings
    from proxy.ratelimit.settings import RateLimitSettings
    from proxy.settings import Settings
    from proxy.settings.model import SidecarFile
    from shadow.dispatch import ShadowLimits


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


def webhook_settings(url: str | None, secret_file: str | None) -> tuple[str | None, str | None]:
    """(webhook URL, secret read from its file) for Settings; exit 2 when unusable."""
    from proxy.control.webhook import check_url

    try:
        if url is None and secret_file is not None:
            raise ValueError("--webhook-secret-file needs --webhook-url")
        secret = Path(secret_file).read_text().strip() if secret_file is not None else None
        if secret == "":
            raise ValueError(f"--webhook-secret-file {secret_file} is empty")
        return (check_url(url) if url is not None else None), secret
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


def auth_settings(args: argparse.Namespace) -> AuthSettings | None:
    """JWT auth from the --auth-* flags (None when no issuer is given); exit 2 on a bad combination.

    Keys come from exactly one of --auth-keys (a file, read now) and --auth-jwks-url (fetched by the server).
    """
    from proxy.auth.jwt_keys import KeySet
    from proxy.auth.settings import AuthSettings

    if not args.auth_issuer:
        return None
    algorithms = tuple(a.strip() for a in args.auth_algorithms.split(",") if a.strip())
    jwks_url = args.auth_jwks_url or None
    try:
        if not args.auth_audience or bool(args.auth_keys) == bool(jwks_url):
            raise ValueError("--auth-issuer needs --auth-audience and one of --auth-keys or --auth-jwks-url")
        keys = KeySet.from_file(Path(args.auth_keys), algorithms) if args.auth_keys else None
        return AuthSettings(
            algorithms,
            args.auth_issuer,
            args.auth_audience,
            keys,
            leeway_s=args.auth_leeway,
            jwks_url=jwks_url,
            max_token_bytes=args.auth_max_token_bytes,
        )
    except (ValueError, OSError) as err:
        print(f"outrider run: auth: {err}", file=sys.stderr)
        raise SystemExit(2) from None


def rate_limit_settings(args: argparse.Namespace) -> RateLimitSettings | None:
    """GCRA limits from the --rate-* flags (None when --rate-limit is 0), in memory or in a shared Redis;
    exit 2 when invalid."""
    from proxy.ratelimit.settings import RateLimitSettings

    if not args.rate_limit:
        return None
    try:
        return RateLimitSettings(
            args.rate_limit,
            args.rate_burst,
            args.rate_key,
            store=args.rate_store,
            redis_url=args.rate_redis_url,
            on_store_error=args.rate_on_store_error,
            redis_timeout_s=args.rate_redis_timeout,
        )
    except ValueError as err:
        print(f"outrider run: rate limit: {err}", file=sys.stderr)
        raise SystemExit(2) from None


def sidecar_settings(conf: SidecarFile, experiments: list[Experiment], files: list[str]) -> Settings:
    """The server's Settings from validated settings (reads the key and token files; exit 2 if unusable)."""
    from proxy.settings import Settings

    flat = argparse.Namespace(  # the names auth_settings/rate_limit_settings read
        auth_issuer=conf.auth.issuer,
        auth_audience=conf.auth.audience,
        auth_keys=conf.auth.keys,
        auth_jwks_url=conf.auth.jwks_url,
        auth_algorithms=",".join(conf.auth.algorithms),
        auth_leeway=conf.auth.leeway,
        auth_max_token_bytes=conf.auth.max_token_bytes,
        rate_limit=conf.rate_limit.rate,
        rate_burst=conf.rate_limit.burst,
        rate_key=conf.rate_limit.key,
        rate_store=conf.rate_limit.store,
        rate_redis_url=conf.rate_limit.redis_url,
        rate_on_store_error=conf.rate_limit.on_store_error,
        rate_redis_timeout=conf.rate_limit.redis_timeout,
    )
    limits = conf.limits
    hook_url, hook_secret = webhook_settings(conf.webhook.url, conf.webhook.secret_file)
    return Settings(
        experiments=experiments,
        listen=parse_hostport(conf.listen, "--listen"),
        admin=parse_hostport(conf.admin, "--admin"),
        grpc_listen=parse_hostport(conf.grpc_listen, "--grpc-listen") if conf.grpc_listen else None,
        data_dir=Path(conf.data_dir),
        default_upstream=conf.default_upstream,
        max_body_bytes=limits.max_body_bytes,
        config_files=files,
        admin_token=admin_token(conf.admin_token_file),
        auth=auth_settings(flat),
        rate_limit=rate_limit_settings(flat),
        header_timeout_s=limits.header_timeout,
        body_min_rate=limits.body_min_rate,
        max_connections=limits.max_connections,
        keepalive_s=limits.keepalive,
        data_plane=conf.server.data_plane,
        max_connections_per_client=limits.max_connections_per_client,
        body_timeout_s=limits.body_timeout,
        body_rate_window_s=limits.body_rate_window,
        max_buffered_body_bytes=limits.max_buffered_body_bytes,
        trusted_proxies=tuple(conf.trusted_proxies),
        retry_budget=conf.retries.budget,
        retry_min=conf.retries.min,
        preserve_host=conf.forward.preserve_host,
        drain_delay_s=conf.drain.delay,
        shutdown_timeout_s=conf.drain.timeout,
        reload_interval_s=conf.reload.interval,
        webhook_url=hook_url,
        webhook_secret=hook_secret,
        feedback_secret=feedback_secret(conf.feedback.secret_file),
        workers=conf.workers,
        store=conf.store,
        store_lease_s=conf.store_lease,
        store_queue=conf.store_queue,
        shadow_limits=shadow_limits(conf),
    )


def shadow_limits(conf: SidecarFile) -> ShadowLimits:
    """The shadow dispatcher's and compare pool's bounds from the `shadows` section."""
    from shadow.compare.pool import CompareLimits
    from shadow.dispatch import ShadowLimits

    s = conf.shadows
    compare = CompareLimits(s.compare_inline_bytes, s.compare_queue, s.compare_workers, s.compare_mode)
    return ShadowLimits(
        queue=s.queue,
        workers=s.workers,
        breaker_failures=s.breaker_failures,
        breaker_open_s=s.breaker_open,
        compare=compare,
    )
