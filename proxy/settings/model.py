"""The sidecar settings file (`outrider run --settings outrider.yaml`): one pydantic model per section.

Every field has a flag and an `OUTRIDER_` environment variable too, derived from it (`proxy.settings.fields`);
precedence is flag > environment > file > default. docs/settings.md is generated from these docstrings.
Usage: `SidecarFile.model_validate({"listen": "0.0.0.0:8080", "limits": {"headerTimeout": "10s"}})`
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, BeforeValidator, Field, StrictStr, model_validator

from experiments.schema_types import Duration, Section, problem
from experiments.sink import SinkLimits
from experiments.stores import check_store
from proxy.dataplane.limits import PlaneLimits
from shadow.limits import Mode, ShadowLimits

_PLANE, _SHADOW = PlaneLimits(), ShadowLimits()
"""The components' own defaults (they run without a settings file in tests and benches): the settings take
theirs from them, so each default is written once."""

Seconds = Annotated[float, Field(ge=0, allow_inf_nan=False)]
"""Zero or more seconds, as a number or a duration string (for settings where 0 means "off")."""


def _comma_list(value: object) -> object:
    """Flags and environment variables write lists as `a,b,c`; files write YAML lists."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


CommaList = Annotated[list[StrictStr], BeforeValidator(_comma_list)]


def _cidr(value: str) -> str:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise problem(f"{value!r} is not an IP network like 10.0.0.0/8 or 2001:db8::/32") from None
    return value


Cidrs = Annotated[list[Annotated[StrictStr, AfterValidator(_cidr)]], BeforeValidator(_comma_list)]


def _seconds(value: object) -> object:
    if value in (0, "0", 0.0):
        return 0.0
    from experiments.durations import parse_duration

    return parse_duration(value) if isinstance(value, str) else value


class Limits(Section):
    """Connection and size limits of the data port (docs/reliability.md "Safe defaults")."""

    max_body_bytes: int = Field(_PLANE.max_body_bytes, gt=0)
    """Request body cap for the whole sidecar, in bytes; an experiment's `spec.maxBodyBytes` may set less."""
    header_timeout: Duration = _PLANE.header_timeout_s
    """From a request's first byte to its last header byte; slower connections are closed (slowloris)."""
    body_min_rate: int = Field(_PLANE.body_min_rate, gt=0)
    """Bytes per second a request body must keep up after `headerTimeout` of grace; slower gets 408."""
    max_connections: int = Field(_PLANE.max_connections, gt=0)
    """Open client connections on the data port; beyond this, new connections are closed at once."""
    keepalive: Duration = _PLANE.keepalive_s
    """Idle keep-alive connections are closed after this long."""
    max_connections_per_client: int = Field(_PLANE.max_connections_per_client, gt=0)
    """Native data plane: open connections per client address (the peer, or via a trusted proxy the client
    its X-Forwarded-For names, counted per request in flight); beyond, closed at once (429 via a proxy)."""
    body_timeout: Duration = _PLANE.body_timeout_s
    """Native data plane: a request body must be complete this long after outrider starts reading it."""
    body_rate_window: Duration = _PLANE.body_rate_window_s
    """Native data plane: each window this long (sliding by a quarter) must bring `bodyMinRate` × it bytes."""
    max_buffered_body_bytes: int = Field(_PLANE.max_buffered_body_bytes, gt=0)
    """Native data plane: request-body bytes held in memory across all connections; beyond, 503 (counted)."""


class Server(Section):
    """How the data port is served."""

    data_plane: Literal["native", "aiohttp"] = "native"
    """`native`: HTTP/1.1 at protocol level on uvloop with httptools (auth, rate limits and routing run before
    the body is read; docs/dataplane.md); `aiohttp`: aiohttp's web server. The admin port is aiohttp."""


class Auth(Section):
    """JWT authentication (RFC 8725): on when `issuer` is set, which needs `audience` and one key source."""

    FLAG_PREFIX: ClassVar[str] = "auth-"
    """Its flags are `--auth-NAME` (proxy.settings.fields)."""

    issuer: StrictStr | None = None
    """Exact `iss` every token must carry."""
    audience: StrictStr | None = None
    """`aud` every token must carry."""
    keys: StrictStr | None = None
    """File with a PEM public key, a JWKS document, or (HS* only) a shared secret of ≥ 32 bytes."""
    jwks_url: StrictStr | None = None
    """JWKS URL fetched with aiohttp (cache 300 s, one refresh per 30 s on an unknown `kid`, timeout 2 s)."""
    algorithms: CommaList = Field(default_factory=lambda: ["RS256"])
    """Allowlist of algorithms, one family only (HS* never mixed with RS/ES/PS/EdDSA); `none` is refused."""
    leeway: Annotated[Seconds, BeforeValidator(_seconds), Field(le=60)] = 30.0
    """Clock skew tolerated on `exp`/`iat`/`nbf`, at most 60 s."""
    max_token_bytes: int = Field(8192, gt=0)
    """Longest bearer token accepted (401 beyond); a header line over 8 KiB is refused by the parser (400)."""


def _store(value: str) -> str:
    try:
        return check_store(value)
    except ValueError as err:
        raise problem(str(err)) from None


def _redis_url(value: str) -> str:
    if not value.startswith(("redis://", "rediss://", "unix://")):
        raise problem(f"{value!r} is not a Redis URL like redis://127.0.0.1:6379/0 (or rediss://, unix://)")
    return value


class RateLimit(Section):
    """GCRA rate limit per key; 429 with Retry-After beyond it."""

    FLAG_PREFIX: ClassVar[str] = "rate-"
    """Its flags are `--rate-NAME` (proxy.settings.fields)."""

    rate: float = Field(0.0, ge=0, allow_inf_nan=False, json_schema_extra={"flag": "--rate-limit"})
    """Sustained requests per second per key; 0 turns the limit off."""
    burst: int = Field(20, ge=0)
    """Requests admitted at once above the sustained rate."""
    key: StrictStr = "client"
    """`client` (the client address), `claim:NAME`, `route` or `header:NAME`."""
    store: Literal["memory", "redis"] = "memory"
    """`memory`: each replica counts on its own; `redis`: every replica shares one budget per key in Redis."""
    redis_url: Annotated[StrictStr, AfterValidator(_redis_url)] | None = None
    """The shared store when `store` is `redis`: `redis://HOST:PORT/DB` (or `rediss://`, `unix://`)."""
    on_store_error: Literal["open", "closed", "local"] = "local"
    """While Redis fails or its breaker is open (5 errors in a row, then 1 s): `open` admits, `closed` refuses
    (429), `local` limits per replica in memory (N replicas then admit up to N times the limit). Counted."""
    redis_timeout: Duration = 0.05
    """Deadline of one Redis decision (connect, pool wait and reply; no retries), then `onStoreError`."""

    @model_validator(mode="after")
    def _redis_needs_a_url(self) -> RateLimit:
        if self.store == "redis" and self.redis_url is None:
            raise problem("store: redis needs redisUrl")
        return self


class Retries(Section):
    """Upstream retries: only when the connection could not be established, never after a byte was sent."""

    FLAG_PREFIX: ClassVar[str] = "retry-"
    """Its flags are `--retry-NAME` (proxy.settings.fields)."""

    budget: float = Field(0.2, ge=0, le=1)
    """Retries allowed as a share of requests over a sliding 10 s window."""
    min: int = Field(3, ge=0)
    """Retries always allowed per window, whatever the share."""


class Forward(Section):
    """How requests are passed to the upstream."""

    preserve_host: bool = False
    """Send the client's `Host` to the upstream; off: the upstream's own `host:port` from its URL."""


class Drain(Section):
    """What SIGTERM does: readiness fails at once, traffic is served `delay` longer, in-flight requests get
    `timeout` to finish, outcomes are flushed, the process exits."""

    FLAG_PREFIX: ClassVar[str] = "drain-"
    """Its flags are `--drain-NAME` (proxy.settings.fields)."""

    delay: Annotated[Seconds, BeforeValidator(_seconds)] = 5.0
    """Seconds between readiness failing and the listener closing (load balancers stop sending)."""
    timeout: Duration = 15.0
    """Longest wait for in-flight requests once the listener is closed."""


class Reload(Section):
    """Experiment files are re-read on SIGHUP and when they change; an invalid set keeps the last good one."""

    FLAG_PREFIX: ClassVar[str] = "reload-"
    """Its flags are `--reload-NAME` (proxy.settings.fields)."""

    interval: Annotated[Seconds, BeforeValidator(_seconds)] = 2.0
    """Seconds between checks of the files' modification time and size; 0 = on SIGHUP only."""


class Webhook(Section):
    """An optional HTTP endpoint that receives every decision as JSON (retried with backoff, counted)."""

    FLAG_PREFIX: ClassVar[str] = "webhook-"
    """Its flags are `--webhook-NAME` (proxy.settings.fields)."""

    url: StrictStr | None = None
    """Where decisions are POSTed; unset = no webhook."""
    secret_file: StrictStr | None = None
    """File with a secret; each POST then carries `X-Outrider-Signature: sha256=HMAC(body)`."""


class Feedback(Section):
    """`POST /outrider/v1/feedback` takes a reward only with the `x-outrider-feedback-token` (an HMAC-SHA256)
    that the request's response carried."""

    FLAG_PREFIX: ClassVar[str] = "feedback-"
    """Its flags are `--feedback-NAME` (proxy.settings.fields)."""

    secret_file: StrictStr | None = None
    """File with the key of the feedback tokens (≥ 32 bytes; give every start the same one); unset = made once
    as `DATA_DIR/feedback.secret` (32 random bytes, mode 0600) and reused, so tokens survive restarts."""


class Shadows(Section):
    """Mirroring to shadow variants (docs/shadows.md): the bounded queue and its workers, each shadow's
    circuit breaker, and the pool that compares large answers off the event loop."""

    FLAG_PREFIX: ClassVar[str] = "shadow-"
    """Its flags are `--shadow-NAME` (proxy.settings.fields)."""

    queue: int = Field(_SHADOW.queue, ge=1)
    """Copies waiting for a worker; beyond, new copies are dropped (`queue_full`): the primary never waits."""
    workers: int = Field(_SHADOW.workers, ge=1, le=1024)
    """Copies sent at once."""
    breaker_failures: int = Field(_SHADOW.breaker_failures, ge=1)
    """Consecutive failures (timeout, reset, connect error) that open a shadow's circuit."""
    breaker_open: Duration = _SHADOW.breaker_open_s
    """How long an open circuit drops copies before one probe is let through."""
    compare_inline_bytes: int = Field(_SHADOW.compare.inline_bytes, ge=0)
    """Answers up to this size (both sides) are compared inline; larger ones in the compare pool."""
    compare_queue: int = Field(_SHADOW.compare.queue, ge=1)
    """Comparisons waiting or running in the pool; beyond, new copies that need one are dropped."""
    compare_workers: int = Field(_SHADOW.compare.workers, ge=1, le=64)
    """Pool workers; one leaves the other core of a 2-core sidecar to the event loop."""
    compare_mode: Mode = _SHADOW.compare.mode
    """Where large comparisons run: processes (default; they never hold the event loop's GIL), threads, or
    the event loop itself (to measure against)."""


class SidecarFile(Section):
    """The settings of one outrider process."""

    listen: StrictStr = "127.0.0.1:8080"
    """Data port, HOST:PORT (port 0 = any free port; the bound address is logged)."""
    admin: StrictStr = "127.0.0.1:8081"
    """Admin port (health, metrics, experiments, dashboard), HOST:PORT; keep it on loopback."""
    grpc_listen: StrictStr | None = None
    """gRPC port (Open Inference Protocol's GRPCInferenceService), HOST:PORT; unset = no gRPC port."""
    data_dir: StrictStr = "./outrider-data"
    """Where outcomes, experiment states and reports are stored (SQLite, WAL)."""
    experiments: list[StrictStr] = Field(default_factory=list)
    """Experiment files (relative paths are relative to this settings file); `-c` adds more."""
    default_upstream: StrictStr | None = None
    """Where requests that match no experiment go; unset = answer 404."""
    admin_token_file: StrictStr | None = None
    """File with the bearer token for admin mutations (else $OUTRIDER_ADMIN_TOKEN; none = refused)."""
    workers: int = Field(1, ge=1, le=64)
    """Data-plane processes on this host, all serving the data port (SO_REUSEPORT); above 1, `outrider run`
    supervises them and alone runs the controllers and the admin port (docs/scale-out.md)."""
    store: Annotated[StrictStr, AfterValidator(_store)] = "sqlite"
    """Where outcomes and experiment states are kept: `sqlite` (one file under dataDir, shared by the workers
    of one host) or `redis://HOST:PORT/DB` (`rediss://`, `unix://`): replicas on several hosts share outcome
    streams and states, and the one holding the lease judges (docs/scale-out.md)."""
    store_lease: Annotated[Seconds, BeforeValidator(_seconds), Field(ge=0.3, le=300)] = 5.0
    """With a Redis store: how long the leader's lease lasts without a renewal (renewed every third of it);
    another replica takes over at most this long plus a third after the leader is lost."""
    store_retention: Annotated[Seconds, BeforeValidator(_seconds)] | None = None
    """With a Redis store: trim the outcome and reward streams to this much before what the leader's last
    checkpoint has consumed (e.g. `7d`); unset = keep them whole, so that `outrider export` then `outrider
    analyze` reproduce every decision (docs/scale-out.md "Memory")."""
    store_queue: int = Field(SinkLimits().max_pending, ge=1, le=10_000_000)
    """Outcome records a process holds for the store while it is slow or away (Redis); past that, new ones are
    dropped and counted by reason, and a fleet's leader refuses to promote past 0.1% of an arm dropped."""
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    """Level of the JSON log lines on stderr."""
    trusted_proxies: Cidrs = Field(default_factory=list)
    """CIDRs whose X-Forwarded-For is believed, read right to left; empty = the TCP peer is the client."""
    server: Server = Field(default_factory=Server)
    limits: Limits = Field(default_factory=Limits)
    auth: Auth = Field(default_factory=Auth)
    rate_limit: RateLimit = Field(default_factory=RateLimit)
    retries: Retries = Field(default_factory=Retries)
    forward: Forward = Field(default_factory=Forward)
    drain: Drain = Field(default_factory=Drain)
    reload: Reload = Field(default_factory=Reload)
    webhook: Webhook = Field(default_factory=Webhook)
    feedback: Feedback = Field(default_factory=Feedback)
    shadows: Shadows = Field(default_factory=Shadows)
