"""Every sidecar setting's three spellings: its key in the settings file, its flag, its environment variable.

One table, so that `outrider run --help`, the environment and docs/settings.md can never disagree.
Usage: `for f in FIELDS: parser.add_argument(f.flag, dest=f.dest, ...)`
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SettingField:
    """One setting: `path` in the file (camelCase keys), `flag` of `outrider run`, `env` after `OUTRIDER_`."""

    path: tuple[str, ...]
    flag: str
    env: str
    number: bool = False
    """Flag and environment values are text; numeric ones are read as numbers before validation."""
    switch: bool = False
    """A yes/no setting: its flag alone means `true` (`--preserve-host`), or takes a value (`... false`)."""

    @property
    def dest(self) -> str:
        """The argparse destination of the flag."""
        return self.flag.lstrip("-").replace("-", "_")

    @property
    def env_var(self) -> str:
        """The full environment variable name."""
        return f"OUTRIDER_{self.env}"

    @property
    def dotted(self) -> str:
        """`limits.headerTimeout`."""
        return ".".join(self.path)


def _f(path: str, flag: str, env: str, number: bool = False, switch: bool = False) -> SettingField:
    return SettingField(tuple(path.split(".")), flag, env, number, switch)


FIELDS: tuple[SettingField, ...] = (
    _f("listen", "--listen", "LISTEN"),
    _f("admin", "--admin", "ADMIN"),
    _f("grpcListen", "--grpc-listen", "GRPC_LISTEN"),
    _f("dataDir", "--data-dir", "DATA_DIR"),
    _f("defaultUpstream", "--default-upstream", "DEFAULT_UPSTREAM"),
    _f("adminTokenFile", "--admin-token-file", "ADMIN_TOKEN_FILE"),
    _f("workers", "--workers", "WORKERS", True),
    _f("store", "--store", "STORE"),
    _f("storeLease", "--store-lease", "STORE_LEASE"),
    _f("storeQueue", "--store-queue", "STORE_QUEUE", True),
    _f("logLevel", "--log-level", "LOG_LEVEL"),
    _f("trustedProxies", "--trusted-proxies", "TRUSTED_PROXIES"),
    _f("server.dataPlane", "--data-plane", "DATA_PLANE"),
    _f("limits.maxBodyBytes", "--max-body-bytes", "MAX_BODY_BYTES", True),
    _f("limits.headerTimeout", "--header-timeout", "HEADER_TIMEOUT", True),
    _f("limits.bodyMinRate", "--body-min-rate", "BODY_MIN_RATE", True),
    _f("limits.maxConnections", "--max-connections", "MAX_CONNECTIONS", True),
    _f("limits.keepalive", "--keepalive", "KEEPALIVE", True),
    _f("limits.maxConnectionsPerClient", "--max-connections-per-client", "MAX_CONNECTIONS_PER_CLIENT", True),
    _f("limits.bodyTimeout", "--body-timeout", "BODY_TIMEOUT", True),
    _f("limits.bodyRateWindow", "--body-rate-window", "BODY_RATE_WINDOW", True),
    _f("limits.maxBufferedBodyBytes", "--max-buffered-body-bytes", "MAX_BUFFERED_BODY_BYTES", True),
    _f("auth.issuer", "--auth-issuer", "AUTH_ISSUER"),
    _f("auth.audience", "--auth-audience", "AUTH_AUDIENCE"),
    _f("auth.keys", "--auth-keys", "AUTH_KEYS"),
    _f("auth.jwksUrl", "--auth-jwks-url", "AUTH_JWKS_URL"),
    _f("auth.algorithms", "--auth-algorithms", "AUTH_ALGORITHMS"),
    _f("auth.leeway", "--auth-leeway", "AUTH_LEEWAY", True),
    _f("auth.maxTokenBytes", "--auth-max-token-bytes", "AUTH_MAX_TOKEN_BYTES", True),
    _f("rateLimit.rate", "--rate-limit", "RATE_LIMIT", True),
    _f("rateLimit.burst", "--rate-burst", "RATE_BURST", True),
    _f("rateLimit.key", "--rate-key", "RATE_KEY"),
    _f("rateLimit.store", "--rate-store", "RATE_STORE"),
    _f("rateLimit.redisUrl", "--rate-redis-url", "RATE_REDIS_URL"),
    _f("rateLimit.onStoreError", "--rate-on-store-error", "RATE_ON_STORE_ERROR"),
    _f("rateLimit.redisTimeout", "--rate-redis-timeout", "RATE_REDIS_TIMEOUT", True),
    _f("retries.budget", "--retry-budget", "RETRY_BUDGET", True),
    _f("retries.min", "--retry-min", "RETRY_MIN", True),
    _f("forward.preserveHost", "--preserve-host", "PRESERVE_HOST", switch=True),
    _f("drain.delay", "--drain-delay", "DRAIN_DELAY", True),
    _f("drain.timeout", "--drain-timeout", "DRAIN_TIMEOUT", True),
    _f("reload.interval", "--reload-interval", "RELOAD_INTERVAL", True),
    _f("webhook.url", "--webhook-url", "WEBHOOK_URL"),
    _f("webhook.secretFile", "--webhook-secret-file", "WEBHOOK_SECRET_FILE"),
    _f("feedback.secretFile", "--feedback-secret-file", "FEEDBACK_SECRET_FILE"),
)
