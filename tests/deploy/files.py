"""Where the deployment files are, and readers for them shared by the deployment tests.

The chart is rendered with Helm's own template engine (Helm's Go SDK through `helm-python-sdk`),
so what the tests see is what `helm install` would send to the cluster.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import helm_python
import yaml

from ponder.server.metrics import PonderMetrics

__all__ = [
    "ALERTS",
    "CHART",
    "COMPOSE",
    "DASHBOARD",
    "DEPLOY",
    "PROMETHEUS_CONFIG",
    "REPO",
    "Rendered",
    "dashboard_queries",
    "metric_names",
    "ponder_metric_names",
    "render",
    "rule_queries",
]

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
CHART = DEPLOY / "helm" / "ponder"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
PROMETHEUS_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "ponder.json"
COMPOSE = DEPLOY / "compose" / "compose.yaml"

RELEASE = "demo"
NAMESPACE = "ml"


@dataclass
class Rendered:
    """The objects one `helm template` produced, by kind and name."""

    objects: list[dict[str, Any]]

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] == kind]

    def one(self, kind: str) -> dict[str, Any]:
        (found,) = self.of_kind(kind)
        return found

    def kinds(self) -> set[str]:
        return {o["kind"] for o in self.objects}

    @property
    def container(self) -> dict[str, Any]:
        (container,) = self.one("Deployment")["spec"]["template"]["spec"]["containers"]
        return container

    @property
    def pod(self) -> dict[str, Any]:
        return self.one("Deployment")["spec"]["template"]["spec"]

    def env(self) -> dict[str, Any]:
        """The container's variables: plain values as strings, references as their `valueFrom`."""
        return {e["name"]: e.get("value", e.get("valueFrom")) for e in self.container["env"]}


def render(values: dict[str, Any] | None = None) -> Rendered:
    """Render the chart with `values` over its defaults (Helm checks values.schema.json first)."""
    with helm_python.Chart.load(CHART) as chart:
        manifests = chart.render(values or {}, name=RELEASE, namespace=NAMESPACE)
    objects = [
        doc
        for path, text in sorted(manifests.items())
        if path.endswith(".yaml")
        for doc in yaml.safe_load_all(text)
        if doc
    ]
    return Rendered(objects)


def ponder_metric_names() -> set[str]:
    """Every series name Ponder exports, with the suffixes Prometheus sees (_total, _bucket...)."""
    metrics = PonderMetrics()
    names: set[str] = set()
    for family in metrics.registry.collect():
        suffixes = {
            "counter": ["_total"],
            "histogram": ["_bucket", "_sum", "_count"],
            "info": ["_info"],
        }.get(family.type, [""])
        names.update(family.name + suffix for suffix in suffixes)
    return names


# A metric name in PromQL: Ponder's own or vLLM's (`vllm:` names hold a colon, which the
# recording rules' `ponder:` names share; those are told apart by the caller).
_METRIC = re.compile(r"\b(ponder_[a-z_]+|vllm:[a-z_]+|ponder:[a-z_:0-9]+)")


def metric_names(expr: str) -> set[str]:
    """The Ponder and vLLM series (and Ponder recording rules) a PromQL expression reads."""
    return set(_METRIC.findall(expr))


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title and target, PromQL) for every target of every panel of the dashboard."""
    dashboard = json.loads(DASHBOARD.read_text())
    return [
        (f"{panel['title']} [{target['refId']}]", target["expr"])
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    ]


def rule_queries() -> list[tuple[str, str, str]]:
    """(kind, name, PromQL) for every recording and alert rule in alerts.yml."""
    rules = yaml.safe_load(ALERTS.read_text())
    return [
        ("record", r["record"], r["expr"]) if "record" in r else ("alert", r["alert"], r["expr"])
        for group in rules["groups"]
        for r in group["rules"]
    ]
