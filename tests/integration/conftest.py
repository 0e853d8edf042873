"""Whole-process fixtures: real upstreams and real outrider processes on ephemeral 127.0.0.1 ports."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from tests.support.procs import Proc, run_cmd, start

CANARY = """\
apiVersion: outrider.dev/v1alpha1
kind: Experiment
metadata:
  name: {name}
spec:
  match:
    pathPrefix: {prefix}
  variants:
    - {{name: stable, role: stable, upstream: "{stable}"}}
    - {{name: candidate, role: candidate, upstream: "{candidate}"}}
  assignment:
    unit: header:x-user-id
    salt: {salt}
  strategy:
    canary:
      steps: {steps}
  timeout: {timeout}
  maxBodyBytes: {max_body}
{spec_extra}"""


def canary_yaml(
    stable: str,
    candidate: str,
    *,
    name: str = "split",
    prefix: str = "/v2",
    steps: str = "[10, 25, 50]",
    salt: str = "salt-1",
    timeout: str = "30s",
    max_body: int = 1_048_576,
    spec: Mapping[str, str] | None = None,
) -> str:
    """A canary experiment file between two upstream URLs (`spec`: more keys of `spec`, as YAML scalars)."""
    return CANARY.format(
        name=name,
        prefix=prefix,
        stable=stable,
        candidate=candidate,
        steps=steps,
        salt=salt,
        timeout=timeout,
        max_body=max_body,
        spec_extra="".join(f"  {key}: {value}\n" for key, value in (spec or {}).items()),
    )


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
