"""Whole-process fixtures: real upstreams and real outrider processes on ephemeral 127.0.0.1 ports."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from experiments.builder import Canary, ExperimentDoc, Variant
from tests.support.procs import Proc, run_cmd, start


def canary_doc(
    stable: str,
    candidate: str,
    *,
    name: str = "split",
    steps: tuple[float, ...] = (10, 25, 50),
    **changes: Any,
) -> ExperimentDoc:
    """A canary experiment between two upstream URLs on `/v2`, sticky by `x-user-id`, bodies up to 1 MiB;
    `changes`: any other field of the file (`experiments.builder.ExperimentDoc`)."""
    doc = ExperimentDoc(
        name,
        (Variant.stable(stable), Variant.candidate(candidate)),
        Canary(steps),
        salt="salt-1",
        max_body_bytes=1_048_576,
    )
    return doc.with_(**changes)


def canary_yaml(stable: str, candidate: str, **changes: Any) -> str:
    """The text of `canary_doc(stable, candidate, **changes)`."""
    return canary_doc(stable, candidate, **changes).yaml()


@pytest.fixture(scope="module")
def upstreams(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Proc, Proc]]:
    """Two echo upstreams named `stable` and `candidate`."""
    logs = tmp_path_factory.mktemp("upstreams")
    procs = [
        start([sys.executable, "-m", "tests.support.upstream", "--name", name], logs / f"{name}.log")
        for name in ("stable", "candidate")
    ]
    yield procs[0], procs[1]
    for proc in procs:
        proc.stop()


OutriderFactory = Callable[..., Proc]


@pytest.fixture
def outrider(tmp_path: Path) -> Iterator[OutriderFactory]:
    """Start outrider processes: `outrider(config, ..., args=(...), data_dir=...)`; all stopped at the end."""
    started: list[Proc] = []

    def _start(*configs: str, args: tuple[str, ...] = (), data_dir: Path | None = None) -> Proc:
        files: list[Path] = []
        for i, text in enumerate(configs):
            path = tmp_path / f"experiment-{len(started)}-{i}.yaml"
            path.write_text(text)
            files.append(path)
        cmd = run_cmd(files, data_dir or tmp_path / "data", *args)
        proc = start(cmd, tmp_path / f"outrider-{len(started)}.log")
        started.append(proc)
        return proc

    yield _start
    for proc in started:
        proc.stop()
