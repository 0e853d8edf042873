"""Which modules run compiled (mypyc), and whether each extension was built from the source beside it.

Usage: problems = stale()   # [] when every extension matches its .py; check() raises StaleBuild otherwise

The build (setup.py) compiles the modules that pyproject.toml lists (`[tool.outrider] compiled`) unless
OUTRIDER_PURE_PYTHON=1, and writes `compiled.json` beside this file: each compiled module and the SHA-256 of
the source it was compiled from (an empty list for a pure-Python build). An extension module shadows its .py
on import, so after an edit without a rebuild the old code would run in silence; `stale` finds that, an
extension no build recorded (left behind by an earlier build), and a recorded one that is missing. The
`outrider` command refuses to start on a stale build, and so does the test session (tests/conftest.py).
"""

from __future__ import annotations

import hashlib
import json
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
"""Where the packages are: the source tree (editable install) or site-packages."""
MANIFEST = "plumbing/compiled.json"
PACKAGES = ("proxy", "experiments", "plumbing")
"""The packages that may hold compiled modules (and the group's shared library: `plumbing/hotpath__mypyc`)."""
SHARED_LIB = "plumbing.hotpath__mypyc"


class StaleBuild(RuntimeError):
    """Compiled modules that do not match their sources."""


def source_digest(path: Path) -> str:
    """SHA-256 of a source file, as the build records it."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def recorded(root: Path = ROOT) -> dict[str, str]:
    """Module name → the digest of the source it was compiled from ({} for a pure build, or none at all)."""
    try:
        doc = json.loads((root / MANIFEST).read_text())
    except FileNotFoundError:
        return {}
    modules: dict[str, str] = doc["modules"]
    return modules


def extensions(root: Path = ROOT) -> dict[str, Path]:
    """Module name → extension file, for every extension module inside outrider's packages."""
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for ending in {Path(suffix).suffix for suffix in EXTENSION_SUFFIXES}:  # {".so"}
            for path in (root / package).rglob("*" + ending):
                suffix = next((s for s in EXTENSION_SUFFIXES if path.name.endswith(s)), None)
                if suffix is not None:
                    found[path.relative_to(root).as_posix()[: -len(suffix)].replace("/", ".")] = path
    return found


def stale(root: Path = ROOT) -> list[str]:
    """What is wrong with the compiled modules under `root` ([] when nothing is)."""
    modules = recorded(root)
    present = extensions(root)
    problems = []
    for name, digest in sorted(modules.items()):
        source = root / (name.replace(".", "/") + ".py")
        if name not in present:
            problems.append(f"{name}: recorded as compiled, but its extension module is missing")
        elif not source.exists() or source_digest(source) != digest:
            problems.append(f"{name}: {source.name} changed since it was compiled")
    expected = {*modules, SHARED_LIB} if modules else set()
    for name in sorted(present.keys() - expected):
        problems.append(f"{name}: an extension module no build recorded ({present[name].name})")
    return problems


def check(root: Path = ROOT) -> None:
    """Raise StaleBuild, saying what and how to fix it, when `stale` finds anything."""
    problems = stale(root)
    if problems:
        raise StaleBuild(
            "compiled modules do not match their sources; rebuild them (`make install`, or "
            "`pip install -e .`; OUTRIDER_PURE_PYTHON=1 builds pure Python and removes them):\n  "
            + "\n  ".join(problems)
        )
