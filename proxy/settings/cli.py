"""The `outrider run` flags, generated from the settings table so that flag, file key and variable agree.

Usage: `add_setting_flags(run_parser)`; then `resolve(args.settings, vars(args), os.environ)`.
"""

from __future__ import annotations

import argparse

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from proxy.settings.fields import FIELDS, SettingField
from proxy.settings.model import SidecarFile


def describe(field: SettingField) -> tuple[str, object]:
    """(description, default) of a setting, from the settings model's docstrings."""
    model: type[BaseModel] = SidecarFile
    for key in field.path[:-1]:
        sub = _by_alias(model, key).annotation
        assert isinstance(sub, type)
        assert issubclass(sub, BaseModel)
        model = sub
    info = _by_alias(model, field.path[-1])
    default = info.get_default(call_default_factory=True)
    return (info.description or "").replace("%", "%%"), default


def shown_default(default: object, sep: str) -> object:
    """A default as the docs write it: `unset`, `a,b`, `true`, or the value."""
    if default is None:
        return "unset"
    if isinstance(default, bool):
        return str(default).lower()
    return sep.join(default) if isinstance(default, list) else default


def _by_alias(model: type[BaseModel], key: str) -> FieldInfo:
    for name, info in model.model_fields.items():
        if (info.alias or name) == key:
            return info
    raise KeyError(key)


def add_setting_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per setting (default None: unset flags never override the file or the environment)."""
    groups: dict[str, argparse._ArgumentGroup] = {}
    for field in FIELDS:
        section = field.path[0] if len(field.path) > 1 else ""
        if section not in groups:
            title = f"settings: {section}" if section else "settings"
            groups[section] = parser.add_argument_group(title)
        text, default = describe(field)
        shown = shown_default(default, ",")
        described = f"{text} [file: {field.dotted}; env: ${field.env_var}; default: {shown}]"
        group = groups[section]
        if field.switch:  # the flag alone means true
            group.add_argument(
                field.flag, dest=field.dest, nargs="?", const="true", metavar="BOOL", help=described
            )
        else:
            group.add_argument(field.flag, dest=field.dest, default=None, metavar=field.env, help=described)


_INTRO = """# Sidecar settings

`outrider run` reads its settings from, in order of precedence: flags, `OUTRIDER_` environment variables, the
settings file given by `--settings FILE` (or `$OUTRIDER_SETTINGS`), and the defaults below. Every problem is
reported with where the bad value came from (`FILE:LINE:COL: path: message`, `$OUTRIDER_NAME: ...`,
`--flag: ...`) and `outrider run` exits 2. Durations are written `500ms`, `10s`, `5m` or as a number of
seconds. Experiment files (`experiments:` and `-c`) are re-read on SIGHUP and when they change; the other
settings are read at start-up only. `$OUTRIDER_ADMIN_TOKEN` may hold the admin token itself.

Generated from `proxy/settings/model.py` by `make schema` (a test checks it is current).

```yaml
# outrider.yaml — every key is optional
listen: 0.0.0.0:8080
admin: 127.0.0.1:8081
dataDir: /var/lib/outrider
experiments: [experiments/canary.yaml]
trustedProxies: [10.0.0.0/8]
limits: {headerTimeout: 10s, bodyMinRate: 1024, maxConnections: 4096, keepalive: 75s}
auth: {issuer: https://issuer.example, audience: models, jwksUrl: https://issuer.example/jwks.json}
rateLimit: {rate: 100, burst: 20, key: claim:sub}
drain: {delay: 5s, timeout: 15s}
```
"""


def settings_markdown() -> str:
    """docs/settings.md: every setting with its file key, flag, variable, default and meaning."""
    lines = [_INTRO]
    section = None
    for field in FIELDS:
        here = field.path[0] if len(field.path) > 1 else ""
        if here != section:
            section = here
            lines += ["", f"## `{here}`" if here else "## Top level", ""]
            lines += ["| file key | flag | environment | default | meaning |", "|---|---|---|---|---|"]
        text, default = describe(field)
        shown = shown_default(default, ", ")
        meaning = text.replace("%%", "%").replace("|", "\\|").replace("\n", " ")
        lines.append(f"| `{field.dotted}` | `{field.flag}` | `{field.env_var}` | `{shown}` | {meaning} |")
    lines.append("")
    lines.append("Also: `experiments`, experiment files relative to the settings file (`-c FILE` adds more).")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(settings_markdown(), end="")
