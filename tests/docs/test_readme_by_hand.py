"""The README's by-hand section, run as pasted: the first `sh` block under "Using it", in bash, from a
scratch copy of the repository's examples and models, with the five fixed ports moved to free ones (so the
test never collides with anything on the machine). Everything else is the text of the README.

It takes about 70 s (its load runs 60 s, then outrider drains), and checks what the README says happens:
the infer answer, a rollback of the failing candidate, the outcome counters, the export, and that
`kill $(jobs -p)` leaves nothing running.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parents[2]
PORTS = (8080, 8081, 9001, 9002, 9003)


def by_hand_block(readme: str) -> str:
    """The first ```sh block after the `## Using it` heading."""
    section = readme[readme.index("## Using it") :]
    match = re.search(r"```sh\n(.*?)```", section, re.S)
    assert match is not None, "no sh block under '## Using it'"
    return match.group(1)


def free_ports(n: int) -> list[int]:
    """`n` distinct ports the kernel had free a moment ago."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def moved(text: str, ports: dict[int, int]) -> str:
    """`text` with each fixed port (as a whole number) replaced by its free one."""
    return re.sub(r"\b(8080|8081|9001|9002|9003)\b", lambda m: str(ports[int(m.group(1))]), text)


def scratch_copy(tmp: Path, ports: dict[int, int]) -> None:
    """examples/ with the ports moved; models/ and .venv linked (the venv of this interpreter)."""
    (tmp / "examples").mkdir()
    for path in (REPO / "examples").iterdir():
        if path.is_file():
            (tmp / "examples" / path.name).write_text(moved(path.read_text(), ports))
    (tmp / "models").symlink_to(REPO / "models")
    (tmp / ".venv").symlink_to(Path(sys.prefix))


def test_the_by_hand_section_runs_as_pasted(tmp_path: Path) -> None:
    ports = dict(zip(PORTS, free_ports(len(PORTS)), strict=True))
    script = moved(by_hand_block((REPO / "README.md").read_text()), ports)
    scratch_copy(tmp_path, ports)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OUTRIDER_")}
    done = subprocess.run(
        ["bash", "-e", "-c", script],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=240,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]
    assert "examples/canary.yaml: ok" in out
    answer = next(line for line in done.stdout.splitlines() if line.startswith('{"model_name"'))
    probs = orjson.loads(answer)["outputs"][0]["data"]
    assert max(range(10), key=probs.__getitem__) == 7  # the file is a handwritten 7
    assert re.search(r"digits-canary\s+rolled_back", done.stdout), out[-4000:]
    counters: dict[str, float] = {}  # summed over labels (dropped has one series per reason)
    for m in re.finditer(r"^(outrider_outcomes_\w+)(?:\{[^}]*\})? ([0-9.e+]+)$", done.stdout, re.M):
        counters[m.group(1)] = counters.get(m.group(1), 0.0) + float(m.group(2))
    produced = counters["outrider_outcomes_produced_total"]
    assert produced > 10_000
    assert counters["outrider_outcomes_dropped_total"] == 0  # the load had ended: nothing lost
    exported = (tmp_path / "outcomes.jsonl").read_bytes().splitlines()
    assert len(exported) == produced
    assert (tmp_path / "by-hand" / "reports" / "digits-canary" / "report.md").is_file()
    for port in ports.values():  # `kill $(jobs -p); wait` stopped everything it started
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0, f"something still listens on {port}"
