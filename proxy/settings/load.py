"""Resolve a sidecar's settings: settings file, then `OUTRIDER_` environment, then flags, validated once.

Problems name where the bad value came from: `FILE:LINE:COL: limits.headerTimeout: ...` for the file,
`$OUTRIDER_HEADER_TIMEOUT: ...` for the environment, `--header-timeout: ...` for a flag.
Usage: `resolved = resolve("outrider.yaml", {"listen": "127.0.0.1:0"}, os.environ)` (SettingsError if invalid)
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from experiments.explain import explain
from experiments.yamlmarks import Finding, MarkedDocument, load_marked
from proxy.settings.fields import FIELDS, SettingField
from proxy.settings.model import SidecarFile

_NUMBER = re.compile(r"[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?")


class SettingsError(Exception):
    """Settings that cannot be used; `problems` lists each one, located."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass(frozen=True, slots=True)
class Resolved:
    """Validated settings and the experiment files they name (file entries first, then `-c` flags)."""

    settings: SidecarFile
    experiment_files: list[str]
    source: str | None
    """The settings file, if one was given."""


def resolve(path: str | None, flags: Mapping[str, object], environ: Mapping[str, str]) -> Resolved:
    """Merge file < environment < flags (`flags` by argparse dest) and validate; SettingsError if invalid."""
    doc, data = _read(path)
    origin: dict[tuple[str, ...], str] = {}
    for field in FIELDS:
        env_value = environ.get(field.env_var) or None
        flag_value = flags.get(field.dest)
        flag_value = flag_value if isinstance(flag_value, str) else None
        for value, where in ((env_value, f"${field.env_var}"), (flag_value, field.flag)):
            if value is not None:
                _put(data, field, _typed(field, value))
                origin[field.path] = where
    try:
        model = SidecarFile.model_validate(data)
    except ValidationError as exc:
        findings = sorted(explain(exc.errors(), data, root=SidecarFile), key=lambda f: doc.mark_of(f.path))
        raise SettingsError([_locate(f, origin, doc, path) for f in findings]) from None
    base = Path(path).parent if path is not None else Path(".")
    files = [str(base / f) if not Path(f).is_absolute() else f for f in model.experiments]
    return Resolved(model, files, path)


def _read(path: str | None) -> tuple[MarkedDocument, dict[str, Any]]:
    if path is None:
        return MarkedDocument(parsed=True), {}
    try:
        text = Path(path).read_bytes().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError([f"{path}:1:1: (file): cannot read: {exc}"]) from None
    doc = load_marked(text)
    problems = [_locate(f, {}, doc, path) for f in doc.findings]
    if not problems and doc.data is not None and not isinstance(doc.data, dict):
        problems.append(f"{path}:1:1: (document): expected a mapping of settings")
    if problems:
        raise SettingsError(problems)
    return doc, copy.deepcopy(doc.data) if isinstance(doc.data, dict) else {}


def _typed(field: SettingField, value: str) -> object:
    if field.number and _NUMBER.fullmatch(value.strip()):
        number = float(value)
        integral = number.is_integer() and "." not in value and "e" not in value.lower()
        return int(number) if integral else number
    return value


def _put(data: dict[str, Any], field: SettingField, value: object) -> None:
    node = data
    for key in field.path[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = node[key] = {}
        node = child
    node[field.path[-1]] = value


def _locate(
    finding: Finding, origin: Mapping[tuple[str, ...], str], doc: MarkedDocument, path: str | None
) -> str:
    dotted = ".".join(str(p) for p in finding.path) or "(document)"
    for depth in range(len(finding.path), 0, -1):
        where = origin.get(tuple(str(p) for p in finding.path[:depth]))
        if where is not None:
            return f"{where}: {dotted}: {finding.message}"
    mark = finding.mark or doc.mark_of(finding.path, key=finding.key)
    return f"{path or '(defaults)'}:{mark.line}:{mark.col}: {dotted}: {finding.message}"
