"""deploy/kustomize, as `kubectl kustomize` renders it, is consistent with outrider itself.

The base (one replica, the embedded store) and the fleet overlay (several replicas sharing Redis): every
setting the sidecar gets by flag or environment is a setting of the settings model, the settings resolve and
the embedded experiment validates (`outrider validate`), the probes use real admin paths on the admin port of
the settings, the grace period covers the drain, and the fleet has replicas, a PodDisruptionBudget over its
pods and a `store` URL naming the Redis Service. Skipped where kubectl (which ships Kustomize) is missing.
"""

from __future__ import annotations

import functools
import io
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
import pytest
import yaml
from pydantic import BaseModel

from experiments.validate import validate_main
from proxy.cli.command import build_parser
from proxy.settings.fields import FIELDS
from proxy.settings.load import Resolved, resolve
from proxy.settings.model import SidecarFile
from tests.deploy.conftest import REPO

KUSTOMIZE = REPO / "deploy" / "kustomize"
TREES = {"base": KUSTOMIZE / "base", "fleet": KUSTOMIZE / "overlays" / "fleet"}
KUBECTL = shutil.which("kubectl")
ADMIN_PATHS = set(orjson.loads((REPO / "proxy" / "admin" / "openapi.json").read_bytes())["paths"])
FLUSH_MARGIN_S = 5
"""Seconds the grace period keeps beyond the model servers' preStop and outrider's drain (flush, exit)."""

pytestmark = pytest.mark.skipif(
    KUBECTL is None, reason="kubectl is not installed: it ships Kustomize, which renders deploy/kustomize"
)


@functools.cache
def render(tree: str) -> tuple[dict[str, Any], ...]:
    """The objects `kubectl kustomize` makes of one tree."""
    assert KUBECTL is not None
    result = subprocess.run(
        [KUBECTL, "kustomize", str(TREES[tree])], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def objects(tree: str, kind: str) -> list[dict[str, Any]]:
    return [doc for doc in render(tree) if doc["kind"] == kind]


def named(tree: str, kind: str, name: str) -> dict[str, Any]:
    found = [doc for doc in objects(tree, kind) if doc["metadata"]["name"] == name]
    assert len(found) == 1, f"{tree}: {kind}/{name}: {len(found)} found"
    return found[0]


def setting_paths(model: type[BaseModel] = SidecarFile, prefix: str = "") -> set[str]:
    """Every leaf setting of the model as its dotted key in the file (`limits.headerTimeout`)."""
    paths: set[str] = set()
    for name, field in model.model_fields.items():
        key = prefix + (field.alias or name)
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            paths |= setting_paths(field.annotation, key + ".")
        else:
            paths.add(key)
    return paths


def setting_of_env(name: str) -> str | None:
    """The setting an environment variable sets, or None."""
    by_env = {f.env_var: f.dotted for f in FIELDS}
    return by_env.get(name)


def setting_of_flag(flag: str) -> str | None:
    """The setting a flag of `outrider run` sets, or None."""
    by_flag = {f.flag: f.dotted for f in FIELDS}
    return by_flag.get(flag)


@dataclass(frozen=True)
class Pod:
    """The model Deployment's pod, with outrider's container and what it is given."""

    tree: str
    deployment: dict[str, Any]

    @property
    def spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = self.deployment["spec"]["template"]["spec"]
        return spec

    @property
    def labels(self) -> dict[str, str]:
        labels: dict[str, str] = self.deployment["spec"]["template"]["metadata"]["labels"]
        return labels

    @property
    def sidecar(self) -> dict[str, Any]:
        init: list[dict[str, Any]] = self.spec.get("initContainers", [])
        found = [c for c in init if c["name"] == "outrider"]
        assert len(found) == 1, "outrider runs as a native sidecar (an init container named outrider)"
        return found[0]

    @property
    def models(self) -> list[dict[str, Any]]:
        return [c for c in self.spec["containers"] if c["command"][:2] == ["outrider", "serve-model"]]

    def env(self) -> dict[str, str]:
        """outrider's environment: its `env` and the ConfigMaps of its `envFrom`."""
        env: dict[str, str] = {}
        for source in self.sidecar.get("envFrom", []):
            assert set(source) == {"configMapRef"}, source  # no prefix, no Secrets here
            env |= named(self.tree, "ConfigMap", source["configMapRef"]["name"])["data"]
        for var in self.sidecar.get("env", []):
            env[var["name"]] = var.get("value", "")
        return env

    def args(self) -> list[str]:
        """`outrider run ...` without the program name."""
        argv = [*self.sidecar["command"], *self.sidecar.get("args", [])]
        assert argv[:2] == ["outrider", "run"], argv
        return argv[1:]

    def mounted_files(self, root: Path) -> None:
        """Write the files of outrider's ConfigMap volumes under `root` at their paths in the container."""
        volumes = {v["name"]: v for v in self.spec["volumes"]}
        for mount in self.sidecar["volumeMounts"]:
            config_map = volumes[mount["name"]].get("configMap")
            if config_map is None:
                continue
            target = root / mount["mountPath"].lstrip("/")
            target.mkdir(parents=True, exist_ok=True)
            for key, text in named(self.tree, "ConfigMap", config_map["name"])["data"].items():
                (target / key).write_text(text)

    def resolved(self, root: Path) -> tuple[Resolved, list[str]]:
        """The settings `outrider run` would use in the container, and its experiment files (under `root`)."""
        self.mounted_files(root)
        args = build_parser().parse_args(self.args())
        assert args.settings, "the settings come from a file in a ConfigMap"
        resolved = resolve(str(root / args.settings.lstrip("/")), vars(args), self.env())
        flagged = [str(root / path.lstrip("/")) for path in args.config]
        return resolved, resolved.experiment_files + flagged

    def volume_of(self, container: dict[str, Any], path: str) -> dict[str, Any] | None:
        """The volume and mount `path` is on in `container` (None: the read-only root filesystem)."""
        volumes = {v["name"]: v for v in self.spec["volumes"]}
        for mount in container.get("volumeMounts", []):
            if Path(path).is_relative_to(mount["mountPath"]):
                return {**volumes[mount["name"]], "readOnly": mount.get("readOnly", False)}
        return None


def pod(tree: str) -> Pod:
    return Pod(tree, named(tree, "Deployment", "digits"))


def port_number(container: dict[str, Any], port: int | str) -> int:
    """A probe's or Service's port, by number or by the container port's name."""
    if isinstance(port, int):
        return port
    numbers = [p["containerPort"] for p in container.get("ports", []) if p["name"] == port]
    assert len(numbers) == 1, f"{container['name']} has no port named {port}"
    number: int = numbers[0]
    return number


def host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)


def option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    assert set(selector) == {"matchLabels"}, selector  # matchExpressions: not used here
    return bool(selector["matchLabels"]) and selector["matchLabels"].items() <= labels.items()


def test_the_trees_render_what_they_should() -> None:
    for tree in TREES:
        kinds = sorted({doc["kind"] for doc in render(tree)})
        assert {"ConfigMap", "Deployment", "Service"} <= set(kinds), (tree, kinds)
    assert not objects("base", "StatefulSet")
    assert not objects("base", "PodDisruptionBudget")


@pytest.mark.parametrize("tree", TREES)
def test_every_flag_and_variable_the_sidecar_gets_is_a_setting(tree: str) -> None:
    known = setting_paths()
    assert {"listen", "drain.delay", "rateLimit.redisUrl"} <= known  # the walk reaches nested sections
    the_pod = pod(tree)
    env = the_pod.env()
    assert env, "settings come by environment too"
    for name in env:
        assert setting_of_env(name) in known, f"{tree}: ${name} is not a setting of outrider run"
    args = the_pod.args()
    build_parser().parse_args(args)  # SystemExit on a flag outrider run does not know
    own = {"--settings", "-c", "--config"}
    for flag in (arg.split("=")[0] for arg in args if arg.startswith("-")):
        assert flag in own or setting_of_flag(flag) in known, f"{tree}: {flag} is not a setting"


@pytest.mark.parametrize("tree", TREES)
def test_settings_resolve_and_the_experiment_validates(tree: str, tmp_path: Path) -> None:
    the_pod = pod(tree)
    resolved, files = the_pod.resolved(tmp_path)
    assert files, "the sidecar is given an experiment"
    for file in files:
        assert Path(file).is_file(), f"{file} is not in a mounted ConfigMap"
    out, err = io.StringIO(), io.StringIO()
    assert validate_main(files, out, err) == 0, err.getvalue()
    data = the_pod.volume_of(the_pod.sidecar, resolved.settings.data_dir)
    assert data is not None, "dataDir must be on a volume: the root filesystem is read-only"
    assert "emptyDir" in data, data
    assert not data["readOnly"]


@pytest.mark.parametrize("tree", TREES)
def test_the_experiment_routes_to_the_pods_model_servers(tree: str, tmp_path: Path) -> None:
    the_pod = pod(tree)
    models = {option(c["command"], "--port"): c for c in the_pod.models}
    copied = {  # volumes that init containers (not the sidecar) write
        m["name"]
        for c in the_pod.spec["initContainers"]
        if c.get("restartPolicy") != "Always"
        for m in c["volumeMounts"]
        if not m.get("readOnly")
    }
    for file in the_pod.resolved(tmp_path)[1]:
        spec = yaml.safe_load(Path(file).read_text())["spec"]
        for variant in spec["variants"]:
            upstream = urlsplit(variant["upstream"])
            assert upstream.hostname == "127.0.0.1", variant  # a model server in the pod, on loopback
            model = models.get(str(upstream.port))
            assert model is not None, f"no model server in the pod listens on {variant['upstream']}"
            assert option(model["command"], "--host") == "127.0.0.1"
            assert spec["match"]["pathPrefix"] == f"/v2/models/{option(model['command'], '--name')}"
            volume = the_pod.volume_of(model, option(model["command"], "--model"))
            assert volume is not None, f"{model['name']}: the model file is on no volume"
            assert volume["name"] in copied, f"no init container puts the model files on {volume['name']}"


@pytest.mark.parametrize("tree", TREES)
def test_probes_and_ports_match_the_settings(tree: str, tmp_path: Path) -> None:
    the_pod = pod(tree)
    settings = the_pod.resolved(tmp_path)[0].settings
    sidecar = the_pod.sidecar
    assert sidecar["restartPolicy"] == "Always"
    admin_host, admin_port = host_port(settings.admin)
    listen_host, listen_port = host_port(settings.listen)
    assert admin_host == listen_host == "0.0.0.0", "the kubelet and the Service reach the pod's address"
    for name in ("startupProbe", "readinessProbe", "livenessProbe"):
        get = sidecar[name]["httpGet"]
        assert get["path"] in ADMIN_PATHS, f"{name}: {get['path']} is not an admin path"
        assert port_number(sidecar, get["port"]) == admin_port, name
    assert sidecar["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert port_number(sidecar, "http") == listen_port
    annotations = the_pod.deployment["spec"]["template"]["metadata"]["annotations"]
    assert int(annotations["prometheus.io/port"]) == admin_port
    assert annotations["prometheus.io/path"] in ADMIN_PATHS
    service = named(tree, "Service", "digits")
    assert matches({"matchLabels": service["spec"]["selector"]}, the_pod.labels)
    for port in service["spec"]["ports"]:
        assert port_number(sidecar, port["targetPort"]) == listen_port
    for model in the_pod.models:
        port = option(model["command"], "--port")
        for name in ("startupProbe", "readinessProbe"):
            check = " ".join(model[name]["exec"]["command"])
            assert f"http://127.0.0.1:{port}/v2/health/ready" in check, (model["name"], name)


@pytest.mark.parametrize("tree", TREES)
def test_non_root_read_only_and_sized(tree: str) -> None:
    for workload in [*objects(tree, "Deployment"), *objects(tree, "StatefulSet")]:
        spec = workload["spec"]["template"]["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True, workload["metadata"]["name"]
        assert spec["automountServiceAccountToken"] is False
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            where = f"{workload['metadata']['name']}/{container['name']}"
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, where
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["capabilities"]["drop"] == ["ALL"], where
            assert {"cpu", "memory"} <= set(container["resources"]["requests"]), where
            assert "memory" in container["resources"]["limits"], where
            if container.get("restartPolicy") == "Always" or container in spec["containers"]:
                assert "readinessProbe" in container, where


@pytest.mark.parametrize("tree", TREES)
def test_the_grace_period_covers_the_drain(tree: str, tmp_path: Path) -> None:
    """Model servers get SIGTERM first and wait drain.delay; outrider (a native sidecar) gets it once they
    have exited, then waits drain.delay again, drains for up to drain.timeout and flushes."""
    the_pod = pod(tree)
    drain = the_pod.resolved(tmp_path)[0].settings.drain
    sleeps = [model["lifecycle"]["preStop"]["sleep"]["seconds"] for model in the_pod.models]
    assert sleeps
    assert all(sleep == drain.delay for sleep in sleeps), (sleeps, drain.delay)
    grace = the_pod.spec["terminationGracePeriodSeconds"]
    assert grace >= max(sleeps) + drain.delay + drain.timeout + FLUSH_MARGIN_S


def test_base_is_one_replica_on_the_embedded_store(tmp_path: Path) -> None:
    the_pod = pod("base")
    assert the_pod.deployment["spec"]["replicas"] == 1
    settings = the_pod.resolved(tmp_path)[0].settings
    assert getattr(settings, "store", "sqlite") == "sqlite"
    assert "OUTRIDER_STORE" not in the_pod.env()
    assert settings.workers == 1


def test_fleet_replicas_share_the_redis_service(tmp_path: Path) -> None:
    the_pod = pod("fleet")
    assert the_pod.deployment["spec"]["replicas"] > 1
    redis = named("fleet", "StatefulSet", "outrider-redis")
    redis_labels = redis["spec"]["template"]["metadata"]["labels"]
    container = redis["spec"]["template"]["spec"]["containers"][0]
    service = named("fleet", "Service", "outrider-redis")
    assert matches({"matchLabels": service["spec"]["selector"]}, redis_labels)
    assert not matches({"matchLabels": service["spec"]["selector"]}, the_pod.labels)
    ports = {p["port"]: port_number(container, p["targetPort"]) for p in service["spec"]["ports"]}
    assert 6379 in ports.values()
    settings = the_pod.resolved(tmp_path)[0].settings
    for url in (the_pod.env()["OUTRIDER_STORE"], settings.rate_limit.redis_url):
        assert url is not None
        parts = urlsplit(url)
        assert parts.scheme == "redis", url
        assert parts.hostname == service["metadata"]["name"], url
        assert parts.port in ports, f"{url}: the Service has ports {sorted(ports)}"
        assert parts.path.lstrip("/").isdigit(), url
    assert settings.rate_limit.store == "redis"


def test_fleet_pod_disruption_budget_covers_its_pods() -> None:
    the_pod = pod("fleet")
    (budget,) = objects("fleet", "PodDisruptionBudget")
    selector = budget["spec"]["selector"]
    assert matches(selector, the_pod.labels)
    assert matches(selector, the_pod.deployment["spec"]["selector"]["matchLabels"])
    redis = named("fleet", "StatefulSet", "outrider-redis")
    assert not matches(selector, redis["spec"]["template"]["metadata"]["labels"])
    replicas = the_pod.deployment["spec"]["replicas"]
    spec = budget["spec"]
    allowed = spec["maxUnavailable"] if "maxUnavailable" in spec else replicas - spec["minAvailable"]
    assert 1 <= allowed < replicas, "evictions proceed, one at a time, and never take every replica"
