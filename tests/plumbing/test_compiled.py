"""The compiled modules (setup.py, plumbing.compiled): built from the sources beside them, from the configured
list, and written within the rules that keep them behaving as they do interpreted."""

from __future__ import annotations

import ast
import importlib
import json
import subprocess
import sys
import tomllib
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

import pytest

from plumbing import compiled
from tests.conftest import REPO

SOURCES: list[str] = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["outrider"]["compiled"]
NAMES = sorted(path.removesuffix(".py").replace("/", ".") for path in SOURCES)
SO = EXTENSION_SUFFIXES[0]


def test_the_configured_modules_run_compiled_or_all_interpreted() -> None:
    built = compiled.recorded()
    assert sorted(built) in ([], NAMES)  # a pure build, or one from this very list
    for name in NAMES:
        loaded_from = importlib.import_module(name).__file__ or ""
        assert loaded_from.endswith(SO if built else ".py"), (name, loaded_from)


def test_every_compiled_module_is_a_source_file_here() -> None:
    assert all((REPO / path).is_file() and path.endswith(".py") for path in SOURCES)
    assert len(set(SOURCES)) == len(SOURCES)


def _tree(root: Path, modules: dict[str, str]) -> None:
    """A fake install: sources, an extension beside each, the shared library, the build's record."""
    (root / "plumbing").mkdir(parents=True)
    for name, text in modules.items():
        source = root / (name.replace(".", "/") + ".py")
        source.parent.mkdir(parents=True, exist_ok=True)
        source.write_text(text)
        source.with_name(source.stem + SO).write_bytes(b"")
    (root / "plumbing" / ("hotpath__mypyc" + SO)).write_bytes(b"")
    digests = {name: compiled.source_digest(root / (name.replace(".", "/") + ".py")) for name in modules}
    (root / compiled.MANIFEST).write_text(json.dumps({"modules": digests}))


def test_an_edited_source_a_missing_extension_and_a_stray_one_are_each_found(tmp_path: Path) -> None:
    _tree(tmp_path, {"proxy.a": "A = 1\n", "proxy.b": "B = 1\n", "experiments.c": "C = 1\n"})
    assert compiled.stale(tmp_path) == []
    compiled.check(tmp_path)
    (tmp_path / "proxy" / "a.py").write_text("A = 2\n")
    (tmp_path / "proxy" / ("b" + SO)).unlink()
    (tmp_path / "proxy" / ("d" + SO)).write_bytes(b"")
    assert compiled.stale(tmp_path) == [
        "proxy.a: a.py changed since it was compiled",
        "proxy.b: recorded as compiled, but its extension module is missing",
        f"proxy.d: an extension module no build recorded (d{SO})",
    ]
    with pytest.raises(compiled.StaleBuild, match="make install"):
        compiled.check(tmp_path)


def test_a_pure_build_with_extensions_left_in_the_tree_is_stale(tmp_path: Path) -> None:
    _tree(tmp_path, {"proxy.a": "A = 1\n"})
    (tmp_path / compiled.MANIFEST).write_text(json.dumps({"modules": {}}))
    assert compiled.stale(tmp_path) == [
        f"plumbing.hotpath__mypyc: an extension module no build recorded (hotpath__mypyc{SO})",
        f"proxy.a: an extension module no build recorded (a{SO})",
    ]
    (tmp_path / compiled.MANIFEST).unlink()  # never built (a checkout run from its tree): the same
    assert len(compiled.stale(tmp_path)) == 2


def test_compiled_classes_with_interpreted_bases_set_no_class_attributes() -> None:
    """mypyc drops class attributes set in the body of a class whose base class is interpreted (an error
    class's `status = 503` read 500): such classes belong in an interpreted module (e.g. the errors')."""
    wrong = []
    for path, name in zip(sorted(SOURCES), NAMES, strict=True):
        module = importlib.import_module(name)
        for node in ast.walk(ast.parse((REPO / path).read_text())):
            if not isinstance(node, ast.ClassDef):
                continue
            assigned = [
                s
                for s in node.body
                if isinstance(s, ast.Assign) or (isinstance(s, ast.AnnAssign) and s.value is not None)
            ]
            cls = getattr(module, node.name)
            interpreted = [
                base.__qualname__
                for base in cls.__mro__[1:]
                if base.__module__ not in {"builtins", "typing", *NAMES}
            ]
            if assigned and interpreted:
                wrong.append(f"{path}: {node.name} sets class attributes over {interpreted}")
    assert wrong == []


def _classes(tree: ast.Module) -> list[ast.ClassDef]:
    return [node for node in ast.walk(tree) if isinstance(node, ast.ClassDef)]


def test_no_interpreted_class_derives_from_a_compiled_one() -> None:
    """A compiled class refuses interpreted subclasses (TypeError when one is made): such a base stays
    interpreted, or its subclass is compiled too."""
    native = {
        (name, node.name)
        for path, name in zip(sorted(SOURCES), NAMES, strict=True)
        for node in _classes(ast.parse((REPO / path).read_text()))
        if not any(ast.unparse(base).endswith("Protocol") for base in node.bases)
    }
    wrong = []
    for path in sorted({*REPO.glob("[a-z]*/**/*.py")} - {REPO / p for p in SOURCES}):
        if path.parts[len(REPO.parts)] in {"build", "outrider-data"}:
            continue
        tree = ast.parse(path.read_text())
        names: dict[str, str] = {}  # a local name → the dotted name it was imported as
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names |= {alias.asname or alias.name: f"{node.module}.{alias.name}" for alias in node.names}
            elif isinstance(node, ast.Import):
                names |= {alias.asname or alias.name: alias.name for alias in node.names}
        for node in _classes(tree):
            for base in node.bases:
                text = ast.unparse(base.value if isinstance(base, ast.Subscript) else base)
                first, _, rest = text.partition(".")
                module, _, name = ".".join(filter(None, (names.get(first, first), rest))).rpartition(".")
                if (module, name) in native:
                    wrong.append(f"{path.relative_to(REPO)}: {node.name}({ast.unparse(base)})")
    assert wrong == []


LOG_A_DATACLASS = """
import logging
from proxy.dataplane.limits import PlaneLimits
from proxy.telemetry.logs import JsonFormatter
record = logging.LogRecord("t", logging.INFO, "", 0, "", None, None)
record.fields = {"event": "limits", "limits": PlaneLimits()}
print(JsonFormatter().format(record))
"""


def test_a_logged_compiled_dataclass_is_written_as_text() -> None:
    """orjson crashes the process (SIGSEGV) serialising compiled dataclasses with float fields (PlaneLimits,
    Exchange, OutcomeRecord): the log formatter hands every dataclass to `str` instead."""
    done = subprocess.run([sys.executable, "-c", LOG_A_DATACLASS], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["limits"].startswith("PlaneLimits(header_timeout_s=10.0")
