"""One source per fact (issue 14): the settings model (proxy.settings.model) is the only declaration of a
setting and its default. The server's `Settings` carries the validated model plus what is derived from it and
declares no default of its own."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from proxy.settings import Settings
from proxy.settings.build import sidecar_settings
from proxy.settings.load import resolve
from proxy.settings.model import SidecarFile

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
