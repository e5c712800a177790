"""The Helm chart, rendered by Helm's own engine for several value sets and checked three ways:
against a pinned Kubernetes version's schemas (strict: unknown fields fail), against Ponder's own
settings (every variable it passes must parse into `Settings`), and for what matters to running
Ponder (probes, ports, drain grace, GPUs, models, secrets, verifiers, the policy table).
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import helm_python
import kubernetes_validate
import pytest
import yaml
from cloudcoil.models.prometheus_operator import v1 as operator

from ponder.server.settings import Settings, VerifierSpec
from ponder.strategies.policy import default_policy, load_policy
from tests.deploy.files import ALERTS, CHART, DASHBOARD, Rendered, ponder_metric_names, render

# The chart declares kubeVersion >=1.27: validate against that and the newest schemas shipped.
KUBERNETES_VERSIONS = ("1.27.0", "1.37.0")
# Custom resources of the Prometheus Operator: no Kubernetes schema; checked against its CRDs below.
CUSTOM_KINDS = {"ServiceMonitor", "PrometheusRule"}
# Settings another change adds (issue 10's drain grace): passed by the chart before it lands.
VERIFIERS: list[dict[str, Any]] = [
    {"name": "prm", "family": "qwen_prm", "model": "/models/Qwen2.5-Math-PRM-7B"},
    {"name": "orm", "family": "orm", "model": "/models/orm", "gpu_memory_utilization": 0.1},
]

VALUE_SETS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "cpu": {"gpu": {"count": 0}, "resources": {"requests": {"cpu": "2", "memory": "8Gi"}}},
    "gpu-pvc": {
        "gpu": {"count": 2},
        "engine": {"tensorParallelSize": 2, "gpuMemoryUtilization": 0.6},
        "model": {"source": "pvc", "path": "Qwen2.5-7B-Instruct", "pvc": {"claimName": "models"}},
        "nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"},
        "server": {"drainGraceSeconds": 120},
    },
    "host-path": {"model": {"source": "hostPath", "path": "m", "hostPath": {"path": "/data"}}},
    "init-container": {
        "model": {
            "source": "initContainer",
            "path": "m",
            "initContainer": {
                "image": "busybox:1.36",
                "command": ["sh", "-c", "cp -r /seed/m /models/"],
                "sizeLimit": "20Gi",
            },
        }
    },
    "verifiers-policy": {
        "verifiers": VERIFIERS,
        "policyTable": {
            "enabled": True,
            "table": json.loads(default_policy().model_dump_json(exclude_none=True)),
        },
    },
    "api-key": {"apiKey": {"value": "s3cret"}},
    "api-key-existing": {"apiKey": {"existingSecret": "ponder-key", "secretKey": "token"}},
    "autoscaling": {"autoscaling": {"enabled": True, "maxReplicas": 6}},
    "monitoring": {
        "monitoring": {
            "serviceMonitor": {"enabled": True, "labels": {"release": "kps"}},
            "prometheusRule": {"enabled": True},
            "grafanaDashboard": {"enabled": True},
        }
    },
    "extra-env": {"server": {"extraEnv": {"PONDER_MAX_TTS_N": "32"}}},
}


@pytest.fixture(scope="module", params=sorted(VALUE_SETS))
def rendered(request: pytest.FixtureRequest) -> tuple[str, Rendered]:
    return request.param, render(VALUE_SETS[request.param])


def test_every_manifest_validates_against_kubernetes_schemas(
    rendered: tuple[str, Rendered],
) -> None:
    _, out = rendered
    assert {"Deployment", "Service", "ServiceAccount"} <= out.kinds()
    for obj in out.objects:
        if obj["kind"] in CUSTOM_KINDS:
            continue
        for version in KUBERNETES_VERSIONS:
            kubernetes_validate.validate(obj, version, strict=True)


def test_operator_objects_match_the_prometheus_operator_crds() -> None:
    """ServiceMonitor and PrometheusRule parse into models generated from the Prometheus
    Operator's CRDs, and survive the round trip whole (a field the CRD lacks would be dropped)."""
    out = render(VALUE_SETS["monitoring"])
    for kind, model in (
        ("ServiceMonitor", operator.ServiceMonitor),
        ("PrometheusRule", operator.PrometheusRule),
    ):
        obj = out.one(kind)
        parsed = model.model_validate(obj)
        assert parsed.model_dump(by_alias=True, exclude_none=True, mode="json") == obj
    broken = out.one("ServiceMonitor")
    broken["spec"]["endpoints"][0]["scrapeEvery"] = "15s"
    dumped = operator.ServiceMonitor.model_validate(broken).model_dump(
        by_alias=True, exclude_none=True
    )
    assert dumped != broken


def test_the_validator_rejects_a_broken_manifest() -> None:
    """The strict schemas are live: a misspelt field and a wrong type both fail."""
    deployment = render().one("Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {"httpGet": {}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[0], strict=True)
    deployment = render().one("Deployment")
    deployment["spec"]["replicas"] = "one"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[0], strict=True)


def _settings(out: Rendered, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The Settings Ponder would build from the container's environment."""
    secrets = {s["metadata"]["name"]: s["data"] for s in out.of_kind("Secret")}
    for name, value in out.env().items():
        if isinstance(value, dict):
            ref = value["secretKeyRef"]
            encoded = secrets.get(ref["name"], {}).get(ref["key"], base64.b64encode(b"external"))
            value = base64.b64decode(encoded).decode()
        monkeypatch.setenv(name, value)
    return Settings()


def test_every_variable_is_a_ponder_setting_and_parses(
    rendered: tuple[str, Rendered], monkeypatch: pytest.MonkeyPatch
) -> None:
    name, out = rendered
    env = out.env()
    assert all(key.startswith("PONDER_") for key in env)
    fields = {key.removeprefix("PONDER_").lower() for key in env}
    assert fields <= set(Settings.model_fields)
    settings = _settings(out, monkeypatch)
    assert settings.port == out.container["ports"][0]["containerPort"] == 8000
    assert settings.max_concurrent_requests == 16 and settings.max_queued_requests == 64
    if name == "extra-env":
        assert settings.max_tts_n == 32


def test_probes_ports_and_service(rendered: tuple[str, Rendered]) -> None:
    _, out = rendered
    c = out.container
    assert c["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]
    assert c["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
    assert c["startupProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    # A cold engine start (weights, torch.compile, CUDA graphs, verifiers) gets 15 minutes.
    startup = c["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 900
    service = out.one("Service")
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    pod_labels = out.one("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert out.one("Deployment")["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    # Non-root, no privilege escalation, no service-account token.
    assert out.pod["securityContext"]["runAsNonRoot"] is True
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert out.one("ServiceAccount")["automountServiceAccountToken"] is False


def test_grace_period_covers_the_drain(rendered: tuple[str, Rendered]) -> None:
    name, out = rendered
    drain = int(out.env()["PONDER_DRAIN_GRACE_S"])
    assert drain == (120 if name == "gpu-pvc" else 30)
    # The drain, then the engine's shutdown and endpoint propagation: at least 5 s more.
    assert out.pod["terminationGracePeriodSeconds"] >= drain + 5


def test_gpu_limits_image_and_shared_memory(rendered: tuple[str, Rendered]) -> None:
    name, out = rendered
    c, env = out.container, out.env()
    gpus = {"cpu": 0, "gpu-pvc": 2}.get(name, 1)
    resources = c["resources"]
    if gpus:
        assert resources["limits"]["nvidia.com/gpu"] == gpus
        assert resources["requests"]["nvidia.com/gpu"] == gpus
        assert c["image"] == "ponder:0.1.0-gpu"
        assert "PONDER_CPU_KV_CACHE_GIB" not in env
        assert int(env["PONDER_TENSOR_PARALLEL_SIZE"]) <= gpus
        assert {t["key"] for t in out.pod["tolerations"]} == {"nvidia.com/gpu"}
    else:
        assert "nvidia.com/gpu" not in json.dumps(resources)
        assert c["image"] == "ponder:0.1.0-cpu"
        assert env["PONDER_CPU_KV_CACHE_GIB"] == "2"
        assert "PONDER_GPU_MEMORY_UTILIZATION" not in env
    if name == "gpu-pvc":
        assert out.pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
        assert env["PONDER_GPU_MEMORY_UTILIZATION"] == "0.6"
    volumes = {v["name"]: v for v in out.pod["volumes"]}
    assert volumes["dshm"]["emptyDir"]["medium"] == "Memory"
    assert {"name": "dshm", "mountPath": "/dev/shm"} in c["volumeMounts"]


def test_model_sources() -> None:
    embedded = render()
    assert "PONDER_MODEL" not in embedded.env()
    assert "models" not in {v["name"] for v in embedded.pod["volumes"]}
    expected = {
        "gpu-pvc": ("persistentVolumeClaim", "/models/Qwen2.5-7B-Instruct"),
        "host-path": ("hostPath", "/models/m"),
        "init-container": ("emptyDir", "/models/m"),
    }
    for name, (kind, model) in expected.items():
        out = render(VALUE_SETS[name])
        assert out.env()["PONDER_MODEL"] == model
        (volume,) = [v for v in out.pod["volumes"] if v["name"] == "models"]
        assert kind in volume
        (mount,) = [m for m in out.container["volumeMounts"] if m["name"] == "models"]
        assert mount["mountPath"] == "/models"
    pvc = render(VALUE_SETS["gpu-pvc"])
    (volume,) = [v for v in pvc.pod["volumes"] if v["name"] == "models"]
    assert volume["persistentVolumeClaim"] == {"claimName": "models", "readOnly": True}
    init = render(VALUE_SETS["init-container"])
    (fetch,) = init.pod["initContainers"]
    assert fetch["image"] == "busybox:1.36"
    assert fetch["volumeMounts"] == [{"name": "models", "mountPath": "/models"}]


def test_api_key_comes_from_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    assert "PONDER_API_KEY" not in render().env()
    out = render(VALUE_SETS["api-key"])
    ref = out.env()["PONDER_API_KEY"]["secretKeyRef"]
    secret = out.one("Secret")
    assert ref == {"name": secret["metadata"]["name"], "key": "api-key"}
    assert base64.b64decode(secret["data"]["api-key"]) == b"s3cret"
    assert _settings(out, monkeypatch).api_key == "s3cret"
    # The key is never written into the pod spec itself.
    assert "s3cret" not in json.dumps(out.one("Deployment"))
    existing = render(VALUE_SETS["api-key-existing"])
    assert existing.of_kind("Secret") == []
    assert existing.env()["PONDER_API_KEY"]["secretKeyRef"] == {
        "name": "ponder-key",
        "key": "token",
    }


def test_verifiers_and_policy_table(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    out = render(VALUE_SETS["verifiers-policy"])
    settings = _settings(out, monkeypatch)
    assert settings.verifiers == [VerifierSpec(**v) for v in VERIFIERS]
    # The table is a file in a mounted ConfigMap folder (never a subPath, whose content a
    # ConfigMap update would not reach), and the pods carry no checksum of it: Ponder re-reads it.
    (config_map,) = out.of_kind("ConfigMap")
    table = tmp_path / "policy.json"
    table.write_text(config_map["data"]["policy.json"])
    assert load_policy(table) == default_policy()
    assert str(settings.policy_table) == "/etc/ponder/policy/policy.json"
    (mount,) = [m for m in out.container["volumeMounts"] if m["name"] == "policy"]
    assert mount == {"name": "policy", "mountPath": "/etc/ponder/policy", "readOnly": True}
    (volume,) = [v for v in out.pod["volumes"] if v["name"] == "policy"]
    assert volume["configMap"]["name"] == config_map["metadata"]["name"]
    annotations = out.one("Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert not any("policy" in key for key in annotations)


def test_autoscaler_scales_the_deployment_on_waiting_sequences() -> None:
    out = render(VALUE_SETS["autoscaling"])
    hpa, deployment = out.one("HorizontalPodAutoscaler"), out.one("Deployment")
    assert "replicas" not in deployment["spec"]  # the autoscaler owns the count
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (1, 6)
    (metric,) = hpa["spec"]["metrics"]
    assert metric["pods"]["metric"]["name"] in ponder_metric_names()
    # A best-of-N request waits as N sequences, not as one request.
    assert metric["pods"]["metric"]["name"] == "ponder_sequences_waiting"
    assert metric["pods"]["target"]["averageValue"] == "32"
    assert "HorizontalPodAutoscaler" not in render().kinds()


def test_disruption_budget_selects_the_pods() -> None:
    out = render()
    pdb = out.one("PodDisruptionBudget")
    pod_labels = out.one("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert pdb["spec"]["maxUnavailable"] == 1


def test_monitoring_objects(tmp_path: Any) -> None:
    out = render(VALUE_SETS["monitoring"])
    monitor, service = out.one("ServiceMonitor"), out.one("Service")
    assert monitor["metadata"]["labels"]["release"] == "kps"
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"
    # The job label comes from a Service label whose value is `ponder`, the job the rules select.
    assert service["metadata"]["labels"][monitor["spec"]["jobLabel"]] == "ponder"
    assert 'job="ponder"' in ALERTS.read_text()
    rule = out.one("PrometheusRule")
    assert rule["spec"] == yaml.safe_load(ALERTS.read_text())
    dashboard = next(c for c in out.of_kind("ConfigMap") if c["metadata"]["name"].endswith("board"))
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboard["data"]["ponder.json"]) == json.loads(DASHBOARD.read_text())
    assert not CUSTOM_KINDS & render().kinds()


BAD_VALUES = [
    {"replicaCount": -1},
    {"replicaCount": "2"},
    {"server": {"port": 70000}},
    {"server": {"drainGraceSeconds": "30s"}},
    {"server": {"shutdownMarginSeconds": 0}},
    {"server": {"extraEnv": {"HOME": "/tmp"}}},
    {"server": {"logLevel": "verbose"}},
    {"gpu": {"count": -1}},
    {"engine": {"gpuMemoryUtilization": 1.5}},
    {"engine": {"mode": "remote"}},
    {"engine": {"dtype": "int4"}},
    {"model": {"source": "s3"}},
    {"model": {"source": "pvc", "path": "m"}},
    {"model": {"source": "hostPath", "path": "m", "hostPath": {"path": "relative"}}},
    {"model": {"source": "initContainer", "path": "m"}},
    {"verifiers": [{"name": "bad name!", "family": "orm"}]},
    {"verifiers": [{"family": "orm"}]},
    {"verifiers": [{"name": "v", "family": "orm", "max_batch": 0}]},
    {"policyTable": {"enabled": True}},
    {"probes": {"startup": {"failureThreshold": 0}}},
    {"autoscaling": {"targetWaitingSequences": 0}},
    {"shm": {"sizeLimit": "lots"}},
    {"service": {"type": "ExternalName"}},
    {"unknownTopLevel": True},
]


@pytest.mark.parametrize("values", BAD_VALUES, ids=[json.dumps(v) for v in BAD_VALUES])
def test_schema_rejects_bad_values(values: dict[str, Any]) -> None:
    with helm_python.Chart.load(CHART) as chart, pytest.raises(helm_python.HelmValuesError):
        chart.validate_schema(values)
    with pytest.raises(helm_python.HelmValuesError):
        render(values)


def test_more_tensor_parallel_ranks_than_gpus_fail_to_render() -> None:
    with pytest.raises(helm_python.HelmRenderError, match="tensorParallelSize"):
        render({"gpu": {"count": 2}, "engine": {"tensorParallelSize": 4}})
    with pytest.raises(helm_python.HelmRenderError, match="tensorParallelSize"):
        render({"gpu": {"count": 0}, "engine": {"tensorParallelSize": 2}})


def test_every_value_is_in_the_schema_with_a_description() -> None:
    """values.yaml and values.schema.json cover the same keys, each described."""
    with helm_python.Chart.load(CHART) as chart:
        schema, values = chart.schema, chart.values
    assert schema is not None

    def walk(value: Any, node: dict[str, Any], path: str) -> None:
        assert node.get("description"), f"{path} has no description in values.schema.json"
        if isinstance(value, dict) and "properties" in node:
            assert set(value) == set(node["properties"]), path
            for key, child in value.items():
                walk(child, node["properties"][key], f"{path}.{key}")

    for key, value in values.items():
        walk(value, schema["properties"][key], key)
    assert set(values) == set(schema["properties"])
    # And each declared value has a comment right above it in values.yaml (helm-docs style).
    lines = (CHART / "values.yaml").read_text().splitlines()
    stack: list[tuple[int, str]] = []
    for i, line in enumerate(lines):
        match = re.match(r"^( *)([A-Za-z_]\w*):", line)
        if not match:
            continue
        indent, key = len(match[1]), match[2]
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = [k for _, k in stack] + [key]
        stack.append((indent, key))
        node: dict[str, Any] | None = schema
        for part in path:
            node = (node or {}).get("properties", {}).get(part)
        if node is None or "properties" in node:
            continue  # free-form content (e.g. a security context), or a section header
        assert lines[i - 1].strip().startswith("#"), f"{'.'.join(path)} has no comment above it"


def test_helm_lint_is_clean() -> None:
    report = helm_python.lint(CHART, strict=True, kube_version="v1.27.0")
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []
