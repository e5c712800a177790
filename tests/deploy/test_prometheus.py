"""The alert rules and the compose Prometheus config, checked by Prometheus's own `promtool`, and
the alerts' behaviour on synthetic series (`promtool test rules`, cases in alerts_test.yml)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

from tests.deploy.files import (
    ALERTS,
    PROMETHEUS_CONFIG,
    metric_names,
    ponder_metric_names,
    rule_queries,
)

PROMTOOL = shutil.which("promtool")
# What the issue asks the rules to watch, by alert name.
REQUIRED_ALERTS = {
    "PonderServerErrors",
    "PonderAdmissionRefusals",
    "PonderDown",
    "PonderEngineUnhealthy",
    "PonderHighLatency",
    "PonderBudgetExhaustionSpike",
    "PonderVerifierSlow",
}


def promtool(*args: str | Path) -> str:
    assert PROMTOOL, "promtool is missing: scripts/setup.sh installs Debian's prometheus package"
    done = subprocess.run([PROMTOOL, *map(str, args)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_promtool_checks_the_rules_and_the_compose_config() -> None:
    assert "SUCCESS: 13 rules found" in promtool("check", "rules", ALERTS)
    out = promtool("check", "config", PROMETHEUS_CONFIG)
    assert "SUCCESS: 1 rule files found" in out
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "ponder"]
    assert job["static_configs"] == [{"targets": ["ponder:8000"]}]


def test_every_alert_is_documented_and_reads_real_series() -> None:
    rules = yaml.safe_load(ALERTS.read_text())
    alerts = {r["alert"]: r for g in rules["groups"] for r in g["rules"] if "alert" in r}
    assert set(alerts) == REQUIRED_ALERTS
    for name, rule in alerts.items():
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        assert {"summary", "description", "runbook"} <= set(rule["annotations"]), name
        assert len(rule["annotations"]["runbook"]) > 80, name
    records = {name for kind, name, _ in rule_queries() if kind == "record"}
    known = ponder_metric_names()
    for _, name, expr in rule_queries():
        for metric in metric_names(expr):
            if metric.startswith("ponder:"):
                assert metric in records, f"{name} reads an unknown recording rule {metric}"
            elif metric.startswith("ponder_"):
                assert metric in known, f"{name} reads {metric}, which Ponder does not export"


def test_alerts_fire_on_trouble_and_not_on_health(tmp_path: Path) -> None:
    """Run alerts_test.yml, with each alert's description and runbook added to its expectations."""
    cases = yaml.safe_load((Path(__file__).parent / "alerts_test.yml").read_text())
    rules = yaml.safe_load(ALERTS.read_text())
    annotations = {
        r["alert"]: r["annotations"] for g in rules["groups"] for r in g["rules"] if "alert" in r
    }
    tested = set()
    for case in cases["tests"]:
        for check in case["alert_rule_test"]:
            tested.add(check["alertname"])
            for expected in check["exp_alerts"]:
                expected["exp_annotations"] = {
                    **annotations[check["alertname"]],
                    **expected["exp_annotations"],
                }
    assert tested == REQUIRED_ALERTS
    cases["rule_files"] = [str(ALERTS)]
    path = tmp_path / "alerts_test.yml"
    path.write_text(yaml.safe_dump(cases, sort_keys=False))
    promtool("test", "rules", path)
