"""Every sidecar setting's three spellings: its key in the settings file, its flag, its environment variable,
derived from the settings model (proxy.settings.model, the one declaration), so that the file, `outrider run
--help`, the environment and docs/settings.md can never disagree.
Usage: `for f in FIELDS: parser.add_argument(f.flag, dest=f.dest, ...)`
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from types import UnionType
from typing import Annotated, Union, get_args, get_origin

from pydantic import BaseModel

from proxy.settings.model import SidecarFile


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


def derive(model: type[BaseModel], path: tuple[str, ...] = (), prefix: str = "") -> Iterator[SettingField]:
    """The fields of a settings model, depth first in declaration order: the file key is the field's
    camelCase alias; the flag is `--` + the section's `FLAG_PREFIX` + the field name in kebab-case, unless
    the field names its own (`json_schema_extra={"flag": ...}`); the variable is the flag in SHOUTING_CASE.
    Numbers (int, float, durations) and switches (bool) are told by the field's type."""
    for name, info in model.model_fields.items():
        if not path and name in NOT_FLAGS:
            continue
        key = info.alias or name
        kind = _base(info.annotation)
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            yield from derive(kind, (*path, key), getattr(kind, "FLAG_PREFIX", ""))
            continue
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        flag = str(extra.get("flag") or f"--{prefix}{name.replace('_', '-')}")
        env = flag.removeprefix("--").upper().replace("-", "_")
        yield SettingField((*path, key), flag, env, kind in (int, float), kind is bool)


def _base(annotation: object) -> object:
    """`int` of `Annotated[int, ...]`, `float | None` → float: the type a value is read as."""
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    if get_origin(annotation) in (Union, UnionType):
        members = [a for a in get_args(annotation) if a is not type(None)]
        return _base(members[0]) if len(members) == 1 else annotation
    return annotation


NOT_FLAGS = frozenset({"experiments"})
"""Settings without a flag of their own: experiment files are `-c FILE` (repeatable)."""
FIELDS: tuple[SettingField, ...] = tuple(derive(SidecarFile))
