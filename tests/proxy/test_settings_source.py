"""One source per fact (issue 14): the settings model (proxy.settings.model) is the only declaration of a
setting and its default. The server's `Settings` carries the validated model plus what is derived from it and
declares no default of its own; the auth and rate-limit settings take their defaults from the model; the
components that still keep a copy of a default (owned elsewhere) must at least agree with it."""

from __future__ import annotations

import ast
import dataclasses
import inspect
from pathlib import Path

from experiments.sink import SinkLimits
from proxy.auth.settings import AuthSettings
from proxy.dataplane.connguard import GuardLimits
from proxy.dataplane.limits import PlaneLimits
from proxy.dataplane.plane import plane_limits
from proxy.ratelimit.settings import RateLimitSettings
from proxy.ratelimit.shared import RedisLimiterStore
from proxy.settings import Settings
from proxy.settings.build import shadow_limits, sidecar_settings
from proxy.settings.load import resolve
from proxy.settings.model import Auth, Limits, RateLimit, Shadows, SidecarFile
from shadow.dispatch import ShadowLimits
from tests.conftest import REPO

DERIVED = {
    "experiments": "loaded from the experiment files",
    "config_files": "the experiment files, re-read on reload",
    "listen": "conf.listen parsed",
    "admin": "conf.admin parsed",
    "grpc_listen": "conf.grpc_listen parsed",
    "admin_token": "read from conf.admin_token_file or $OUTRIDER_ADMIN_TOKEN",
    "auth": "built from conf.auth, its key file read",
    "rate_limit": "built from conf.rate_limit",
    "webhook_secret": "read from conf.webhook.secret_file",
    "feedback_secret": "read from conf.feedback.secret_file",
    "shadow_limits": "built from conf.shadows",
}
"""Every field of `Settings` but `conf`, and what it is derived from. A new field belongs here only if it
cannot live in the model; a setting goes into proxy.settings.model (and is read as `settings.conf.…`)."""


def test_settings_declare_no_default() -> None:
    defaulted = [
        f.name
        for f in dataclasses.fields(Settings)
        if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
    ]
    assert defaulted == [], "a default belongs in proxy.settings.model, not in Settings"


def test_settings_hold_the_model_and_only_what_is_derived_from_it() -> None:
    names = [f.name for f in dataclasses.fields(Settings)]
    assert names[0] == "conf"
    assert Settings.__annotations__["conf"] == "SidecarFile"
    assert set(names[1:]) == set(DERIVED), "derived only: a setting goes into proxy.settings.model"


def test_the_server_settings_are_the_resolved_model_itself() -> None:
    conf = resolve(None, {"listen": "127.0.0.1:0", "header_timeout": "3s"}, {}).settings
    settings = sidecar_settings(conf, [], [])
    assert settings.conf is conf
    assert (settings.listen, settings.conf.limits.header_timeout) == (("127.0.0.1", 0), 3.0)
    assert (settings.auth, settings.rate_limit, settings.grpc_listen) == (None, None, None)
    assert str(settings.data_dir) == str(Path(SidecarFile().data_dir))


def literal_defaults(path: Path, cls: str) -> list[str]:
    """Fields of dataclass `cls` in `path` whose default is written as a literal (None aside)."""
    tree = ast.parse(path.read_text())
    body = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls).body
    return [
        ast.unparse(node.target)
        for node in body
        if isinstance(node, ast.AnnAssign)
        and node.value is not None
        and all(isinstance(n, ast.Constant | ast.operator | ast.BinOp) for n in ast.walk(node.value))
        and not (isinstance(node.value, ast.Constant) and node.value.value is None)
    ]


def test_auth_and_rate_limit_settings_take_their_defaults_from_the_model() -> None:
    assert literal_defaults(REPO / "proxy" / "auth" / "settings.py", "AuthSettings") == []
    assert literal_defaults(REPO / "proxy" / "ratelimit" / "settings.py", "RateLimitSettings") == []
    auth, limit = Auth(), RateLimit()
    fields = {f.name: f.default for f in dataclasses.fields(AuthSettings)}
    assert (fields["leeway_s"], fields["max_token_bytes"]) == (auth.leeway, auth.max_token_bytes)
    fields = {f.name: f.default for f in dataclasses.fields(RateLimitSettings)}
    assert (fields["key"], fields["store"], fields["redis_url"]) == (limit.key, limit.store, limit.redis_url)
    assert (fields["on_store_error"], fields["redis_timeout_s"]) == (
        limit.on_store_error,
        limit.redis_timeout,
    )


def test_components_and_the_model_share_each_default() -> None:
    """Components that run without a settings file (PlaneLimits, ShadowLimits, CompareLimits, SinkLimits)
    declare their defaults and the model takes them (it cannot be imported by `shadow` or `experiments`);
    GuardLimits takes PlaneLimits', RedisLimiterStore the model's. Each is written once; they agree."""
    limits = Limits()
    assert plane_limits(sidecar_settings(SidecarFile(), [], [])) == PlaneLimits()
    assert GuardLimits() == GuardLimits(limits.header_timeout, limits.max_connections)
    assert shadow_limits(Shadows()) == ShadowLimits()
    assert SinkLimits().max_pending == SidecarFile().store_queue
    store = inspect.signature(RedisLimiterStore).parameters
    assert (store["on_error"].default, store["timeout_s"].default) == (
        RateLimit().on_store_error,
        RateLimit().redis_timeout,
    )
