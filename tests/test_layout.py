"""The layout's rules, checked on the source (docs/design.md, "Layout"):

- imports run one way: `proxy → shadow, analysis → experiments` (and `oipgrpc`, the protocol's messages, for
  those that read them); `modelserver` (the reference model server,
  a stand-in for the user's container) and `oipgrpc` (the protocol's messages) import nothing of outrider but
  `oipgrpc`; `plumbing` (mechanics: work queue, HTTP client defaults) imports nothing of outrider, and every
  package may import it; `loadtests` may use anything, nothing imports `loadtests` or `tests`;
- no module over 300 lines and no function over 60 (generated protobuf code aside). `OVERSIZE` would list
  any still over, with the size it may not grow past; it is empty, and only shrinks.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO

PACKAGES = ("proxy", "shadow", "analysis", "experiments", "modelserver", "oipgrpc", "plumbing", "loadtests")
MAY_IMPORT = {
    "plumbing": {"plumbing"},
    "experiments": {"experiments", "plumbing"},
    "analysis": {"analysis", "experiments", "plumbing"},
    "shadow": {"shadow", "experiments", "oipgrpc", "plumbing"},
    "modelserver": {"modelserver", "oipgrpc", "plumbing"},
    "oipgrpc": {"oipgrpc", "plumbing"},
    "proxy": {"proxy", "shadow", "analysis", "experiments", "modelserver", "oipgrpc", "plumbing"},
    "loadtests": {
        "loadtests",
        "proxy",
        "shadow",
        "analysis",
        "experiments",
        "modelserver",
        "oipgrpc",
        "plumbing",
    },
}
MAX_MODULE_LINES = 300
MAX_FUNCTION_LINES = 60
OVERSIZE: dict[str, int] = {}


def sources() -> list[Path]:
    """Every Python file of the product (tests and generated code aside)."""
    out = []
    for package in PACKAGES:
        out += [p for p in (REPO / package).rglob("*.py") if not p.name.endswith(("_pb2.py", "_pb2_grpc.py"))]
    return sorted(out)


def imported(tree: ast.Module) -> set[str]:
    """Top-level names of everything `tree` imports (at any depth: lazy imports count too)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_imports_run_one_way() -> None:
    wrong = []
    for path in sources():
        package = path.relative_to(REPO).parts[0]
        ours = imported(ast.parse(path.read_text())) & {*PACKAGES, "tests"}
        for name in sorted(ours - MAY_IMPORT[package]):
            wrong.append(f"{path.relative_to(REPO)} imports {name}")
    assert wrong == []


def test_modules_and_functions_stay_small() -> None:
    over: dict[str, int] = {}
    for path in sources():
        rel = str(path.relative_to(REPO))
        text = path.read_text()
        if (lines := len(text.splitlines())) > MAX_MODULE_LINES:
            over[rel] = lines
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                size = (node.end_lineno or node.lineno) - node.lineno + 1
                if size > MAX_FUNCTION_LINES:
                    over[f"{rel}:{node.name}"] = size
    grown = {
        k: v
        for k, v in over.items()
        if v > OVERSIZE.get(k, MAX_FUNCTION_LINES if ":" in k else MAX_MODULE_LINES)
    }
    assert grown == {}, "over the limits (split them; OVERSIZE only shrinks)"
    fixed = sorted(set(OVERSIZE) - set(over))
    assert fixed == [], "now within the limits: remove them from OVERSIZE"
