"""outrider's build: the request path's modules compiled with mypyc (docs/dataplane.md, "Compiled modules").

Everything else is in pyproject.toml, including the list of modules compiled (`[tool.outrider] compiled`).
OUTRIDER_PURE_PYTHON=1 builds pure Python: nothing is compiled, and extension modules an earlier build left in
the source tree (an editable install) are removed, so the .py files run. Either way the build records in
plumbing/compiled.json what it compiled from which source; plumbing.compiled checks it.
"""

from __future__ import annotations

import json
import os
import sys
import tomllib
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))  # plumbing.compiled: what the build records is what the check reads

from plumbing.compiled import MANIFEST, SHARED_LIB, extensions, source_digest  # noqa: E402

PURE = os.environ.get("OUTRIDER_PURE_PYTHON", "") not in ("", "0")
SOURCES: list[str] = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["outrider"]["compiled"]
MODULES = {path.removesuffix(".py").replace("/", "."): path for path in SOURCES}


def manifest() -> str:
    """The record of this build: each compiled module and the digest of its source (read before mypyc reads
    the sources, so that an edit made while it compiles shows as stale)."""
    modules = {} if PURE else {name: source_digest(ROOT / path) for name, path in MODULES.items()}
    return json.dumps({"modules": modules}, indent=1, sort_keys=True) + "\n"


RECORD = manifest()


def remove_extensions(keep: set[str]) -> None:
    """Delete the extension modules in the source tree but those named in `keep`."""
    for name, path in extensions(ROOT).items():
        if name not in keep:
            path.unlink()


class BuildExt(build_ext):
    """Compiles, then records what it compiled (in the wheel, and in the tree when building in place)."""

    def run(self) -> None:
        if not self.extensions:  # a pure build: compiled() wrote its record
            return
        in_place = self.inplace or self.editable_mode
        if in_place:
            remove_extensions(keep={*MODULES, SHARED_LIB})  # a module dropped from the list stops shadowing
        super().run()
        for root in (Path(self.build_lib), *([ROOT] if in_place else [])):
            (root / MANIFEST).parent.mkdir(parents=True, exist_ok=True)
            (root / MANIFEST).write_text(RECORD)


def compiled() -> list[Extension]:
    """The extension modules to build: mypyc's, one shared library (`plumbing.hotpath__mypyc`) for all."""
    if PURE:
        remove_extensions(keep=set())
        (ROOT / MANIFEST).write_text(RECORD)
        return []
    from mypyc.build import mypycify

    group = SHARED_LIB.removesuffix("__mypyc")
    # mypy reads pyproject.toml's [tool.mypy] (strict, the pydantic plugin), as `make typecheck` does
    return mypycify(SOURCES, group_name=group)


setup(ext_modules=compiled(), cmdclass={"build_ext": BuildExt})
