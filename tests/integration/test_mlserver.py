"""MLServer behind outrider: `make interop` installs the `mlserver` extra and runs it (marker `interop`, left
out of the default run; skipped with its reason if MLServer is not installed).

One MLServer process serves two scikit-learn models trained here, `clf-a` (k-nearest neighbours) and `clf-b`
(a shallow decision tree), both at version v1; MLServer answers their class labels as an INT64 output of
shape [N, 1]. outrider fronts them as one model, `digits`: stable is `clf-a`, the shadow `clf-b` (each
variant's `model:` rewrites the name). Clients are tritonclient's, over REST (plain and versioned paths) and
gRPC. The shadow's label agreement — per record and in `outrider analyze`'s verdict — must equal the
agreement of the two models computed offline here; health and readiness checks reach MLServer through
outrider (`is_server_ready()` is True over both protocols).

MLServer comes from this interpreter's environment, or from `OUTRIDER_MLSERVER` (the path of an `mlserver`
executable, e.g. in a venv of its own when its pins clash with this one's; that venv needs the same
scikit-learn version, which reads the pickled models).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import orjson
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from sklearn.datasets import load_digits
from sklearn.neighbors import KNeighborsClassifier
from sklearn.tree import DecisionTreeClassifier

from experiments.builder import Compare, ExperimentDoc, Shadow, ShadowOnly, Variant
from tests.integration.conftest import OutriderFactory
from tests.support.cli import analyzed, exported
from tests.support.procs import BIN, Proc

SKIP = (
    "MLServer is not installed: `pip install -e '.[mlserver]'` (or set OUTRIDER_MLSERVER to an mlserver "
    "executable) to run the MLServer interoperability test"
)
ENV = "OUTRIDER_MLSERVER"
# Looked up, not imported (pytest.importorskip would import it): mlserver registers the OIP messages
# (`inference.*`) in protobuf's default pool, where tritonclient.grpc has already put its own.
INSTALLED = ENV in os.environ or all(find_spec(name) for name in ("mlserver", "mlserver_sklearn"))
pytestmark = [pytest.mark.interop, pytest.mark.skipif(not INSTALLED, reason=SKIP)]
REQUESTS = 100
"""`outrider analyze` looks at records 100 at a time; the last GRPC_CALLS of them over gRPC."""
GRPC_CALLS = 20
TRAIN = 1000


def experiment(http: str, grpc: str) -> str:
    """Shadow-only between two models of one MLServer, over HTTP and gRPC."""
    variants = (
        Variant.stable(http, grpc_upstream=grpc, model="clf-a"),
        Variant.shadow(http, "tree", grpc_upstream=grpc, model="clf-b"),
    )
    copies = Shadow(sample=1.0, timeout="5s", compare=Compare("oip-top1"))
    return ExperimentDoc("mlserver", variants, ShadowOnly(), prefix="/v2/models/digits", shadow=copies).yaml()


@dataclass
class Served:
    proc: Proc
    http: str
    grpc: str
    x: np.ndarray[Any, Any]
    """The rows the test sends, one per request."""
    agree: list[bool]
    """Whether the two models give each row the same label (offline)."""


def mlserver_command() -> str:
    found = os.environ.get(ENV) or shutil.which("mlserver", path=str(BIN)) or shutil.which("mlserver")
    if found is None:
        pytest.skip(SKIP)
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def write_models(root: Path) -> tuple[np.ndarray[Any, Any], list[bool]]:
    """Train and save both models; the test rows and the offline agreement on each."""
    x, y = load_digits(return_X_y=True)
    models = {
        "clf-a": KNeighborsClassifier(n_neighbors=3).fit(x[:TRAIN], y[:TRAIN]),
        "clf-b": DecisionTreeClassifier(max_depth=5, random_state=0).fit(x[:TRAIN], y[:TRAIN]),
    }
    for name, model in models.items():
        (root / name).mkdir()
        joblib.dump(model, root / name / "model.joblib")
        settings = {
            "name": name,
            "implementation": "mlserver_sklearn.SKLearnModel",
            "parameters": {"uri": "./model.joblib", "version": "v1"},
        }
        (root / name / "model-settings.json").write_bytes(orjson.dumps(settings))
    rows = x[TRAIN : TRAIN + REQUESTS].astype(np.float32)
    same = models["clf-a"].predict(rows) == models["clf-b"].predict(rows)
    return rows, [bool(s) for s in same]


def wait_ready(http: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    client = httpclient.InferenceServerClient(url=http)
    deadline = time.monotonic() + 90
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"mlserver exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
            try:
                if all(client.is_model_ready(name, "v1") for name in ("clf-a", "clf-b")):
                    return
            except Exception:  # not listening yet
                pass
            time.sleep(0.2)
    finally:
        client.close()
    raise RuntimeError(f"mlserver not ready within 90 s:\n{log.read_text()[-4000:]}")


@pytest.fixture
def mlserver(tmp_path: Path) -> Iterator[Served]:
    command = mlserver_command()
    root = tmp_path / "models"
    root.mkdir()
    x, agree = write_models(root)
    ports = {"http_port": free_port(), "grpc_port": free_port(), "metrics_port": free_port()}
    settings = {**ports, "host": "127.0.0.1", "parallel_workers": 0}
    (root / "settings.json").write_bytes(orjson.dumps(settings))
    log = tmp_path / "mlserver.log"
    with log.open("wb") as out:
        popen = subprocess.Popen(
            [command, "start", str(root)], stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    proc = Proc(popen, log)
    try:
        http, grpc = f"127.0.0.1:{ports['http_port']}", f"127.0.0.1:{ports['grpc_port']}"
        wait_ready(http, popen, log)
        yield Served(proc, http, grpc, x, agree)
    finally:
        proc.stop(timeout=20)


def drive(http: str, grpc: str, x: np.ndarray[Any, Any]) -> dict[str, bool]:
    """Every row once through outrider (REST, half on the versioned path, then gRPC); the health checks."""
    rest, rpc = httpclient.InferenceServerClient(url=http), grpcclient.InferenceServerClient(url=grpc)
    try:
        for i, row in enumerate(x):
            headers = {"x-user-id": f"u{i}", "x-request-id": f"req-{i}"}
            version = "v1" if i % 2 else ""
            if i < REQUESTS - GRPC_CALLS:
                tensor = httpclient.InferInput("x", [1, row.size], "FP32")
                tensor.set_data_from_numpy(row.reshape(1, -1), binary_data=False)
                wanted = [httpclient.InferRequestedOutput("predict", binary_data=False)]
                rest.infer("digits", [tensor], model_version=version, outputs=wanted, headers=headers)
            else:
                tensor = grpcclient.InferInput("x", [1, row.size], "FP32")
                tensor.set_data_from_numpy(row.reshape(1, -1))
                rpc.infer("digits", [tensor], model_version=version, headers=headers, client_timeout=10)
        return {
            "rest live": rest.is_server_live(),
            "rest ready": rest.is_server_ready(),
            "rest model ready": rest.is_model_ready("digits"),
            "rest model v1 ready": rest.is_model_ready("digits", "v1"),
            "grpc live": rpc.is_server_live(),
            "grpc ready": rpc.is_server_ready(),
            "grpc model ready": rpc.is_model_ready("digits", "v1"),
        }
    finally:
        rest.close()
        rpc.close()


async def test_mlserver_label_agreement_equals_the_offline_one(
    mlserver: Served, outrider: OutriderFactory, tmp_path: Path
) -> None:
    text = experiment(f"http://{mlserver.http}", mlserver.grpc)
    data_dir = tmp_path / "data"
    proxy = outrider(text, data_dir=data_dir, args=("--grpc-listen", "127.0.0.1:0"))
    health = await asyncio.to_thread(drive, proxy.address, proxy.ready["grpc"], mlserver.x)
    assert all(health.values()), health
    proxy.stop()

    records = {str(r["request_id"]): r for r in await exported(data_dir)}
    assert set(records) == {f"req-{i}" for i in range(REQUESTS)}  # health checks are not outcomes
    agreed = []
    for i in range(REQUESTS):
        record = records[f"req-{i}"]
        assert (record["status"], record["error"]) == (200, None), record
        (entry,) = record["shadows"]
        if entry["error"] == "dropped:queue_full":
            continue
        assert (entry["status"], entry["error"], entry.get("compare_error")) == (200, None, None), entry
        assert (entry["rows"], entry["rows_agree"]) == (1, int(mlserver.agree[i])), (i, entry)
        agreed.append(mlserver.agree[i])
    assert len(agreed) >= REQUESTS * 0.9
    offline = sum(agreed) / len(agreed)
    assert 0.3 < sum(mlserver.agree) / REQUESTS < 0.95  # the two models really differ, on some rows only

    (tmp_path / "e.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records.values()))
    (tmp_path / "x.yaml").write_text(text)
    verdict = (await analyzed(tmp_path / "e.jsonl", tmp_path / "x.yaml"))["shadow"]["tree"]
    assert verdict["agreement"]["n"] == len(agreed)
    assert verdict["agreement"]["estimate"] == offline
