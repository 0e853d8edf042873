"""The names of every sidecar setting — file key, flag, environment variable — are a contract (users' settings
files, scripts and manifests rely on them): derived from the settings model, they must stay exactly these.
More may be added (append them here); none may be renamed."""

from __future__ import annotations

from proxy.settings.fields import FIELDS

CONTRACT = [
    ("listen", "--listen", "OUTRIDER_LISTEN"),
    ("admin", "--admin", "OUTRIDER_ADMIN"),
    ("grpcListen", "--grpc-listen", "OUTRIDER_GRPC_LISTEN"),
    ("dataDir", "--data-dir", "OUTRIDER_DATA_DIR"),
    ("defaultUpstream", "--default-upstream", "OUTRIDER_DEFAULT_UPSTREAM"),
    ("adminTokenFile", "--admin-token-file", "OUTRIDER_ADMIN_TOKEN_FILE"),
    ("workers", "--workers", "OUTRIDER_WORKERS"),
    ("store", "--store", "OUTRIDER_STORE"),
    ("storeLease", "--store-lease", "OUTRIDER_STORE_LEASE"),
    ("logLevel", "--log-level", "OUTRIDER_LOG_LEVEL"),
    ("trustedProxies", "--trusted-proxies", "OUTRIDER_TRUSTED_PROXIES"),
    ("server.dataPlane", "--data-plane", "OUTRIDER_DATA_PLANE"),
    ("limits.maxBodyBytes", "--max-body-bytes", "OUTRIDER_MAX_BODY_BYTES"),
    ("limits.headerTimeout", "--header-timeout", "OUTRIDER_HEADER_TIMEOUT"),
    ("limits.bodyMinRate", "--body-min-rate", "OUTRIDER_BODY_MIN_RATE"),
    ("limits.maxConnections", "--max-connections", "OUTRIDER_MAX_CONNECTIONS"),
    ("limits.keepalive", "--keepalive", "OUTRIDER_KEEPALIVE"),
    ("limits.maxConnectionsPerClient", "--max-connections-per-client", "OUTRIDER_MAX_CONNECTIONS_PER_CLIENT"),
    ("limits.bodyTimeout", "--body-timeout", "OUTRIDER_BODY_TIMEOUT"),
    ("limits.bodyRateWindow", "--body-rate-window", "OUTRIDER_BODY_RATE_WINDOW"),
    ("limits.maxBufferedBodyBytes", "--max-buffered-body-bytes", "OUTRIDER_MAX_BUFFERED_BODY_BYTES"),
    ("auth.issuer", "--auth-issuer", "OUTRIDER_AUTH_ISSUER"),
    ("auth.audience", "--auth-audience", "OUTRIDER_AUTH_AUDIENCE"),
    ("auth.keys", "--auth-keys", "OUTRIDER_AUTH_KEYS"),
    ("auth.jwksUrl", "--auth-jwks-url", "OUTRIDER_AUTH_JWKS_URL"),
    ("auth.algorithms", "--auth-algorithms", "OUTRIDER_AUTH_ALGORITHMS"),
    ("auth.leeway", "--auth-leeway", "OUTRIDER_AUTH_LEEWAY"),
    ("auth.maxTokenBytes", "--auth-max-token-bytes", "OUTRIDER_AUTH_MAX_TOKEN_BYTES"),
    ("rateLimit.rate", "--rate-limit", "OUTRIDER_RATE_LIMIT"),
    ("rateLimit.burst", "--rate-burst", "OUTRIDER_RATE_BURST"),
    ("rateLimit.key", "--rate-key", "OUTRIDER_RATE_KEY"),
    ("rateLimit.store", "--rate-store", "OUTRIDER_RATE_STORE"),
    ("rateLimit.redisUrl", "--rate-redis-url", "OUTRIDER_RATE_REDIS_URL"),
    ("rateLimit.onStoreError", "--rate-on-store-error", "OUTRIDER_RATE_ON_STORE_ERROR"),
    ("rateLimit.redisTimeout", "--rate-redis-timeout", "OUTRIDER_RATE_REDIS_TIMEOUT"),
    ("retries.budget", "--retry-budget", "OUTRIDER_RETRY_BUDGET"),
    ("retries.min", "--retry-min", "OUTRIDER_RETRY_MIN"),
    ("forward.preserveHost", "--preserve-host", "OUTRIDER_PRESERVE_HOST"),
    ("drain.delay", "--drain-delay", "OUTRIDER_DRAIN_DELAY"),
    ("drain.timeout", "--drain-timeout", "OUTRIDER_DRAIN_TIMEOUT"),
    ("reload.interval", "--reload-interval", "OUTRIDER_RELOAD_INTERVAL"),
    ("webhook.url", "--webhook-url", "OUTRIDER_WEBHOOK_URL"),
    ("webhook.secretFile", "--webhook-secret-file", "OUTRIDER_WEBHOOK_SECRET_FILE"),
    ("feedback.secretFile", "--feedback-secret-file", "OUTRIDER_FEEDBACK_SECRET_FILE"),
    ("storeQueue", "--store-queue", "OUTRIDER_STORE_QUEUE"),
    ("shadows.queue", "--shadow-queue", "OUTRIDER_SHADOW_QUEUE"),
    ("shadows.workers", "--shadow-workers", "OUTRIDER_SHADOW_WORKERS"),
    ("shadows.breakerFailures", "--shadow-breaker-failures", "OUTRIDER_SHADOW_BREAKER_FAILURES"),
    ("shadows.breakerOpen", "--shadow-breaker-open", "OUTRIDER_SHADOW_BREAKER_OPEN"),
    ("shadows.compareInlineBytes", "--shadow-compare-inline-bytes", "OUTRIDER_SHADOW_COMPARE_INLINE_BYTES"),
    ("shadows.compareQueue", "--shadow-compare-queue", "OUTRIDER_SHADOW_COMPARE_QUEUE"),
    ("shadows.compareWorkers", "--shadow-compare-workers", "OUTRIDER_SHADOW_COMPARE_WORKERS"),
    ("shadows.compareMode", "--shadow-compare-mode", "OUTRIDER_SHADOW_COMPARE_MODE"),
    ("storeRetention", "--store-retention", "OUTRIDER_STORE_RETENTION"),
]


def test_every_setting_keeps_its_key_flag_and_variable() -> None:
    derived = {(f.dotted, f.flag, f.env_var) for f in FIELDS}
    assert [entry for entry in CONTRACT if entry not in derived] == []


def test_numbers_and_switches_are_told_by_their_type() -> None:
    kinds = {f.dotted: (f.number, f.switch) for f in FIELDS}
    assert kinds["workers"] == (True, False)
    assert kinds["limits.headerTimeout"] == (True, False)  # a duration: "10s" or a number
    assert kinds["forward.preserveHost"] == (False, True)
    assert kinds["auth.issuer"] == (False, False)
    assert kinds["rateLimit.rate"] == (True, False)
