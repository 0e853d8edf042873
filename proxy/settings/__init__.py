"""The settings one sidecar process runs with: the validated settings (`conf`, a `SidecarFile` whose model,
proxy.settings.model, is the one declaration of every setting and its default) and what start-up derived from
them and cannot live in the model: experiments loaded, addresses parsed, key, token and secret files read.

`Settings` declares no default: each field is either `conf` or derived from it by `sidecar_settings`
(proxy.settings.build), so no default can be declared twice (tests/proxy/test_settings_source.py).
Usage: `settings = sidecar_settings(resolve(path, flags, os.environ).settings, experiments, files)`;
       `settings.conf.limits.header_timeout`, `settings.listen` (host, port)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from experiments.model import Experiment
    from proxy.auth.settings import AuthSettings
    from proxy.ratelimit.settings import RateLimitSettings
    from proxy.settings.model import SidecarFile
    from shadow.limits import ShadowLimits


@dataclass(frozen=True, slots=True)
class Settings:
    """What `outrider run` was asked to do: `conf` as given, the rest derived from it at start-up."""

    conf: SidecarFile
    """Every setting, validated (file < environment < flags); read values here, e.g. `conf.drain.delay`."""
    experiments: list[Experiment]
    """Loaded from `conf.experiments` and the `-c` files."""
    config_files: list[str]
    """The experiment files, re-read on SIGHUP and when they change (`conf.reload`)."""
    listen: tuple[str, int]
    """`conf.listen` parsed: the data port."""
    admin: tuple[str, int]
    """`conf.admin` parsed: the admin port."""
    grpc_listen: tuple[str, int] | None
    """`conf.grpc_listen` parsed: the gRPC port (proxy.grpcfront); None = none."""
    admin_token: str | None
    """Read from `conf.admin_token_file`, else $OUTRIDER_ADMIN_TOKEN; None = admin mutations refused."""
    auth: AuthSettings | None
    """JWT auth from `conf.auth` (its key file read); None = off."""
    rate_limit: RateLimitSettings | None
    """The limit of `conf.rate_limit`; None = off."""
    webhook_secret: str | None
    """Read from `conf.webhook.secret_file`: the key of each POST's X-Outrider-Signature."""
    feedback_secret: bytes | None
    """Read from `conf.feedback.secret_file`; None = DATA_DIR/feedback.secret."""
    shadow_limits: ShadowLimits
    """The shadow queue, workers, breaker and compare pool of `conf.shadows`."""

    @property
    def data_dir(self) -> Path:
        """`conf.data_dir` as a path."""
        return Path(self.conf.data_dir)
