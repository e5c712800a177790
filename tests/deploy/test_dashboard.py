"""The Grafana dashboard and its provisioning: the JSON loads, every panel and query uses the
templated data source, every series it reads exists (Ponder's from the metrics code, vLLM's from
the installed vLLM's source), and it covers what an operator needs to see.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.files import DASHBOARD, DEPLOY, dashboard_queries, metric_names
from tests.deploy.files import ponder_metric_names as ponder_names

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
# The series each required view reads (the list, in its order).
REQUIRED_SERIES = {
    "request rate and errors": "ponder_requests_total",
    "latency quantiles": "ponder_request_duration_seconds_bucket",
    "compute tokens per request": "ponder_compute_tokens_per_request_bucket",
    "policy tokens per second": "ponder_policy_tokens_total",
    "reasoning share": "ponder_reasoning_tokens_total",
    "prefix-cache hit ratio": "ponder_prompt_cached_tokens_total",
    "verifier calls": "ponder_verifier_calls_total",
    "verifier latency": "ponder_verifier_duration_seconds_bucket",
    "step-cache hits": "ponder_verifier_cache_hits_total",
    "budget exhaustions": "ponder_budget_exhausted_total",
    "difficulty bins": "ponder_difficulty_bin_total",
    "running requests": "ponder_requests_running",
    "waiting requests": "ponder_requests_waiting",
    "running sequences": "ponder_sequences_running",
    "waiting sequences": "ponder_sequences_waiting",
    "vLLM KV-cache usage": "vllm:kv_cache_usage_perc",
    "vLLM queue": "vllm:num_requests_waiting",
}


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def vllm_names() -> set[str]:
    """Series names vLLM's metrics code registers, read from the installed package's source."""
    spec = importlib.util.find_spec("vllm")
    assert spec is not None and spec.origin is not None
    source = "\n".join(
        p.read_text() for p in (Path(spec.origin).parent / "v1" / "metrics").glob("*.py")
    )
    names: set[str] = set()
    for name in re.findall(r'"(vllm:[a-z_]+)"', source):
        names.update({name, f"{name}_total", f"{name}_bucket", f"{name}_sum", f"{name}_count"})
    return names


def test_every_panel_and_query_uses_the_templated_data_source() -> None:
    d = dashboard()
    variables = {v["name"]: v for v in d["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name in ("instance", "strategy"):
        assert variables[name]["datasource"] == DATASOURCE
        assert variables[name]["includeAll"] and variables[name]["allValue"] == ".*"
    panels = [p for p in d["panels"] if p["type"] != "row"]
    assert len(panels) >= 15
    assert len({p["id"] for p in d["panels"]}) == len(d["panels"])
    for panel in panels:
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"] and panel["description"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, panel["title"]
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]


def test_queries_are_templated_on_instance_and_strategy() -> None:
    for title, expr in dashboard_queries():
        assert 'instance=~"$instance"' in expr, title
        if "strategy" in expr and "ponder_difficulty" not in expr:
            assert 'strategy=~"$strategy"' in expr, title


def test_every_series_the_dashboard_reads_exists() -> None:
    ours, vllms = ponder_names(), vllm_names()
    for title, expr in dashboard_queries():
        for name in metric_names(expr):
            assert name in (vllms if name.startswith("vllm:") else ours), f"{title}: {name}"


def test_the_dashboard_covers_what_the_operator_needs() -> None:
    read = {name for _, expr in dashboard_queries() for name in metric_names(expr)}
    missing = {view for view, series in REQUIRED_SERIES.items() if series not in read}
    assert not missing
    exprs = [expr for _, expr in dashboard_queries()]
    for quantile in ("0.5", "0.95", "0.99"):
        assert any(
            f"histogram_quantile({quantile}" in e and "ponder_request_duration" in e for e in exprs
        )
        assert any(
            f"histogram_quantile({quantile}" in e and "ponder_compute_tokens" in e for e in exprs
        )


def test_provisioning_loads_the_dashboard_from_prometheus() -> None:
    source = yaml.safe_load(
        (DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text()
    )
    (datasource,) = source["datasources"]
    assert (datasource["type"], datasource["url"]) == ("prometheus", "http://prometheus:9090")
    providers = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/ponder.yml").read_text())
    (provider,) = providers["providers"]
    # The compose stack mounts deploy/grafana/dashboards at this path.
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
    assert dashboard()["uid"] == "ponder"
