"""Loading experiment files: YAML in, `Experiment` out, or all problems as `FILE:LINE:COL: path: message`.

Reading is synchronous: it happens at start-up, on reload off the event loop, and in the CLI.
Usage: `experiment = load_experiment("examples/canary.yaml")` (raises ConfigError listing all problems)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from experiments.convert import to_experiment
from experiments.crossref import cross_check
from experiments.explain import explain
from experiments.model import Experiment
from experiments.schema_models import ExperimentFile, json_schema
from experiments.yamlmarks import Finding, Mark, MarkedDocument, load_marked

__all__ = [
    "ConfigError",
    "ConfigProblem",
    "check_file",
    "check_files",
    "json_schema",
    "load_experiment",
    "load_experiment_text",
    "load_experiments",
]


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One problem in an experiment file, at a 1-based line and column and a dotted document path."""

    file: str
    line: int
    col: int
    path: str
    """Dotted path from the document root (`spec.variants.1.upstream`); `(document)`, `(file)`: the whole."""
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}: {self.path}: {self.message}"


class ConfigError(Exception):
    """Experiment files that cannot be loaded; `problems` lists every problem found, in file order."""

    def __init__(self, problems: Iterable[ConfigProblem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


@dataclass(frozen=True, slots=True)
class _Checked:
    """The outcome of checking one file: its experiment if it has no problem."""

    source: str
    doc: MarkedDocument
    experiment: Experiment | None
    problems: list[ConfigProblem]


def load_experiment_text(text: str, source: str) -> Experiment:
    """The experiment in YAML `text`; `source` names it in messages. Raises ConfigError."""
    return _loaded(_check_text(text, source))


def load_experiment(path: str | Path) -> Experiment:
    """The experiment in the file at `path`. Raises ConfigError (also when the file cannot be read)."""
    return _loaded(_check_path(path))


def load_experiments(paths: Iterable[str | Path]) -> list[Experiment]:
    """The experiments in several files, which must not share a name or a path prefix. Raises ConfigError."""
    checked = [_check_path(p) for p in paths]
    problems = [p for c in checked for p in c.problems] + _clashes(checked)
    if problems:
        raise ConfigError(problems)
    return [c.experiment for c in checked if c.experiment is not None]


def check_file(path: str | Path) -> list[ConfigProblem]:
    """Every problem in the file at `path` (empty if it is a valid experiment)."""
    return _check_path(path).problems


def check_files(paths: Iterable[str | Path]) -> list[ConfigProblem]:
    """Every problem in the files, including names and path prefixes used by more than one of them."""
    checked = [_check_path(p) for p in paths]
    return [p for c in checked for p in c.problems] + _clashes(checked)


def _check_text(text: str, source: str) -> _Checked:
    """Check YAML `text` (named `source` in messages): its experiment if valid, and its problems."""
    doc = load_marked(text)
    findings = list(doc.findings)
    parsed: ExperimentFile | None = None
    if doc.parsed:
        try:
            parsed = ExperimentFile.model_validate(doc.data)
        except ValidationError as exc:
            findings += explain(exc.errors(), doc.data)
        findings += cross_check(doc.data)
    problems = _locate(findings, doc, source)
    experiment = to_experiment(parsed, source) if parsed is not None and not problems else None
    return _Checked(source, doc, experiment, problems)


def _loaded(checked: _Checked) -> Experiment:
    if checked.experiment is None:
        raise ConfigError(checked.problems)
    return checked.experiment


def _check_path(path: str | Path) -> _Checked:
    source = str(path)
    try:
        text = Path(path).read_bytes().decode("utf-8-sig")
    except OSError as exc:
        reason = exc.strerror or str(exc)
    except UnicodeDecodeError as exc:
        reason = f"not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start})"
    else:
        return _check_text(text, source)
    problem = ConfigProblem(source, 1, 1, "(file)", f"cannot read: {reason}")
    return _Checked(source, MarkedDocument(), None, [problem])


def _locate(findings: list[Finding], doc: MarkedDocument, source: str) -> list[ConfigProblem]:
    problems = set()
    for f in findings:
        mark = f.mark or doc.mark_of(f.path, key=f.key)
        path = ".".join(str(part) for part in f.path) or "(document)"
        problems.add(ConfigProblem(source, mark.line, mark.col, path, f.message))
    return sorted(problems, key=lambda p: (p.line, p.col, p.path, p.message))


def _clashes(checked: list[_Checked]) -> list[ConfigProblem]:
    """Problems for experiments that reuse the name, or the path prefix with the same host and header
    conditions, of one in an earlier file."""
    names: dict[str, str] = {}
    prefixes: dict[tuple[str, str | None, tuple[tuple[str, str], ...]], tuple[str, str]] = {}
    problems = []
    for c in checked:
        if c.experiment is None:
            continue
        name, prefix = c.experiment.name, c.experiment.path_prefix
        where_to = (prefix, c.experiment.host, c.experiment.headers)
        if name in names:
            message = f"experiment name {name!r} is already used in {names[name]}"
            problems.append(_problem_at(c, ("metadata", "name"), message))
        if where_to in prefixes:
            other, where = prefixes[where_to]
            message = f"pathPrefix {prefix!r} is already used by experiment {other!r} in {where}"
            problems.append(_problem_at(c, ("spec", "match", "pathPrefix"), message))
        names.setdefault(name, c.source)
        prefixes.setdefault(where_to, (name, c.source))
    return problems


def _problem_at(checked: _Checked, path: tuple[str, ...], message: str) -> ConfigProblem:
    mark: Mark = checked.doc.mark_of(path)
    return ConfigProblem(checked.source, mark.line, mark.col, ".".join(path), message)
