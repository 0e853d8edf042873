"""The Kubernetes example is consistent with outrider itself: its settings and experiment validate, its probes
use the admin API's paths and port, and its grace period covers the drain."""

from __future__ import annotations

from pathlib import Path

import orjson
import yaml

from experiments.config import load_experiment_text
from proxy.settings.load import resolve

REPO = Path(__file__).resolve().parents[2]
MANIFEST = REPO / "deploy" / "kubernetes" / "sidecar.yaml"


def documents() -> tuple[dict[str, object], dict[str, object]]:
    config_map, deployment = yaml.safe_load_all(MANIFEST.read_text())
    return config_map, deployment


def test_settings_and_experiment_validate(tmp_path: Path) -> None:
    config_map, _ = documents()
    data = config_map["data"]
    assert isinstance(data, dict)
    (tmp_path / "outrider.yaml").write_text(data["outrider.yaml"])
    resolved = resolve(str(tmp_path / "outrider.yaml"), {}, {})
    assert resolved.experiment_files == [str(tmp_path / "experiment.yaml")]
    experiment = load_experiment_text(data["experiment.yaml"], "experiment.yaml")
    assert experiment.name == "digits-canary"
    _, deployment = documents()
    pod = deployment["spec"]["template"]["spec"]  # type: ignore[index]
    drain = resolved.settings.drain
    assert pod["terminationGracePeriodSeconds"] > drain.delay + drain.timeout


def test_probes_hit_real_admin_paths_on_the_admin_port() -> None:
    _, deployment = documents()
    pod = deployment["spec"]["template"]["spec"]  # type: ignore[index]
    sidecar = next(c for c in pod["initContainers"] if c["name"] == "outrider")
    assert sidecar["restartPolicy"] == "Always"
    ports = {p["name"]: p["containerPort"] for p in sidecar["ports"]}
    paths = orjson.loads((REPO / "proxy" / "admin" / "openapi.json").read_bytes())["paths"]
    for probe in ("readinessProbe", "livenessProbe"):
        get = sidecar[probe]["httpGet"]
        assert get["port"] == "admin"
        assert get["path"] in paths
    assert ports["admin"] == 8081
