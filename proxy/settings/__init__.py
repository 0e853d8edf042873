"""The settings one sidecar process runs with, resolved and checked (proxy.settings.load builds them from the
settings file, the environment and the flags; tests build them directly).

Usage: `Settings(experiments=[...], listen=("127.0.0.1", 0))`
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from experiments.model import DEFAULT_MAX_BODY_BYTES, Experiment
from proxy.auth.settings import AuthSettings
from proxy.ratelimit.settings import RateLimitSettings
from shadow.dispatch import ShadowLimits


@dataclass(frozen=True, slots=True)
class Settings:
    """What `outrider run` was asked to do."""

    experiments: list[Experiment]
    listen: tuple[str, int] = ("127.0.0.1", 8080)
    admin: tuple[str, int] = ("127.0.0.1", 8081)
    grpc_listen: tuple[str, int] | None = None  # the gRPC port (proxy.grpcfront); None = none
    data_dir: Path = Path("outrider-data")
    default_upstream: str | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    shutdown_timeout_s: float = 15.0
    flush_timeout_s: float = 10.0
    config_files: list[str] = field(default_factory=list)
    allow_python_parser: bool = False
    admin_token: str | None = None
    auth: AuthSettings | None = None
    rate_limit: RateLimitSettings | None = None
    # connection limits (docs/reliability.md "Safe defaults")
    header_timeout_s: float = 10.0  # from the first byte of a request to its last header byte
    body_min_rate: int = 1024  # bytes/second a request body must keep up (after header_timeout_s of grace)
    max_connections: int = 4096  # open client connections on the data port; beyond, new ones are closed
    keepalive_s: float = 75.0  # idle keep-alive connections are closed after this long
    data_plane: str = "native"  # "native" (proxy.dataplane) or "aiohttp" (proxy.dataplane.edge)
    max_connections_per_client: int = 256  # native plane: per client address (proxy.dataplane.limits)
    body_timeout_s: float = 60.0  # native plane: a body is complete this long after its reading starts
    body_rate_window_s: float = 10.0  # native plane: body_min_rate is also checked over windows this long
    max_buffered_body_bytes: int = 128 * 1024 * 1024  # native plane: request bodies in memory, all together
    trusted_proxies: tuple[str, ...] = ()  # CIDRs whose X-Forwarded-For is believed (read right to left)
    retry_budget: float = 0.2  # connect-failure retries allowed, as a share of requests (min retry_min)
    retry_min: int = 3
    preserve_host: bool = False  # the upstream gets the client's Host (else its own host:port)
    drain_delay_s: float = 5.0  # SIGTERM: readiness off, wait this long, then stop accepting
    reload_interval_s: float = 2.0  # experiment files checked for changes this often (0 = SIGHUP only)
    webhook_url: str | None = (
        None  # every decision is POSTed here as JSON (proxy.control.webhook); None = off
    )
    webhook_secret: str | None = None  # key of the X-Outrider-Signature HMAC-SHA256 of each body
    feedback_secret: bytes | None = None  # key of the feedback tokens; None = DATA_DIR/feedback.secret
    workers: int = 1  # data-plane processes on this host (> 1: a supervisor, proxy.fleet)
    store: str = "sqlite"  # `sqlite` (under data_dir) or `redis://HOST:PORT/DB` (experiments.stores)
    store_lease_s: float = 5.0  # Redis store: the leader's lease (proxy.fleet.lease)
    shadow_limits: ShadowLimits = field(
        default_factory=ShadowLimits
    )  # the shadow queue, workers, compare pool
    store_queue: int = 100_000  # outcome records held for the store at most (experiments.sink)
