"""A real Prometheus scrapes the session's live server, with Ponder's rules loaded, while a little
traffic of several strategies runs; then every dashboard query and every rule is evaluated through
Prometheus's HTTP API. Each must parse and evaluate, and those the traffic moves must return
series, so the dashboard and the alerts stay true to the metric names as the code changes.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest
import yaml
from openai.types.chat import ChatCompletionMessageParam

from tests.deploy.files import (
    ALERTS,
    DASHBOARD,
    dashboard_queries,
    rule_queries,
)
from tests.integration.conftest import MODEL, LiveServer

pytestmark = pytest.mark.integration

QUESTION: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "What is 3 + 4? Reply with only the final number."}
]
# Grafana's built-in variables, as Grafana would fill them for a short time range.
RATE_INTERVAL, RANGE = "1m", "10m"
# Queries this traffic cannot move, and why. Everything else must return series.
NOT_MOVED = {
    # Only 5xx responses: the engine would have to fail.
    "ponder:request_errors:ratio_rate5m",
}


# Alerts that say the server is broken: none may hold while it serves this traffic.
HEALTH_ALERTS = {"PonderDown", "PonderServerErrors", "PonderEngineUnhealthy"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Prometheus:
    def __init__(self, url: str) -> None:
        self.url = url

    def get(self, path: str, **params: Any) -> Any:
        response = httpx.get(f"{self.url}/api/v1/{path}", params=params, timeout=30)
        body = response.json()
        assert response.status_code == 200 and body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.get("query", query=expr)
        assert data["resultType"] == "vector", expr
        return list(data["result"])

    def value(self, expr: str) -> float | None:
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None


@pytest.fixture(scope="module")
def prometheus(
    in_process_server: LiveServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Prometheus]:
    # The session's in-process server, which the tests' `server` is by default.
    server = in_process_server
    binary = shutil.which("prometheus")
    assert binary, "prometheus is missing: scripts/setup.sh installs Debian's prometheus package"
    folder = tmp_path_factory.mktemp("prometheus")
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(ALERTS)],
        "scrape_configs": [
            {
                "job_name": "ponder",
                "static_configs": [{"targets": [urlparse(server.base_url).netloc]}],
            }
        ],
    }
    (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = _free_port()
    command = [
        binary,
        f"--config.file={folder / 'prometheus.yml'}",
        f"--storage.tsdb.path={folder / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    log = folder / "prometheus.log"
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    prom = Prometheus(f"http://127.0.0.1:{port}")
    try:
        _until(lambda: prom.value('up{job="ponder"}') == 1.0, 60, log)
        yield prom
    finally:
        process.terminate()
        process.wait(timeout=30)


def _until(condition: Any, timeout: float, log: Path | None = None) -> None:
    """Poll until `condition()` holds (Prometheus scrapes and evaluates on its own schedule)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():
                return
        except (httpx.HTTPError, AssertionError):
            pass
        assert time.monotonic() < deadline, log.read_text()[-3000:] if log else "timed out"
        time.sleep(0.5)


def _traffic(server: LiveServer) -> None:
    """Requests that move every panel: plain, sampled, verified, compute_optimal, a budget that
    runs out, and a client that goes away mid-stream."""
    client = server.client
    bodies: list[dict[str, Any]] = [
        {},
        {"tts": {"strategy": "self_consistency", "n": 4}},
        {"tts": {"strategy": "best_of_n", "n": 2, "verifier": "self_judge"}},
        {"tts": {"strategy": "compute_optimal"}},
        {"tts": {"strategy": "self_consistency", "n": 4, "budget": {"max_tokens": 12}}},
    ]

    def ask(extra: dict[str, Any]) -> None:
        client.chat.completions.create(
            model=MODEL, messages=QUESTION, max_completion_tokens=8, extra_body=extra
        )

    with ThreadPoolExecutor(len(bodies)) as pool:
        list(pool.map(ask, bodies))
    body = {
        "model": MODEL,
        "messages": QUESTION,
        "max_completion_tokens": 1000,
        "ignore_eos": True,
        "stream": True,
    }
    with httpx.stream("POST", f"{server.base_url}/v1/chat/completions", json=body) as response:
        next(response.iter_lines())  # the first chunk, then hang up


def _dashboard_expr(expr: str, instance: str) -> str:
    return (
        expr.replace("$instance", instance.replace(".", "\\\\."))
        .replace("$strategy", ".*")
        .replace("$__rate_interval", RATE_INTERVAL)
        .replace("$__range", RANGE)
    )


def test_dashboard_and_rules_evaluate_on_live_series(
    server: LiveServer, prometheus: Prometheus
) -> None:
    before = server.metric("ponder_requests_total")
    _traffic(server)
    finished = before + 6
    _until(lambda: server.metric("ponder_requests_total") == finished, 60)
    # Prometheus has scraped the traffic's counts, and evaluated the rules on them since.
    _until(lambda: prometheus.value('sum(ponder_requests_total{job="ponder"})') == finished, 30)
    _until(lambda: prometheus.value("count(ponder:requests:rate5m)") is not None, 30)
    status = prometheus.value('sum(ponder_requests_total{status="cancelled"})')
    assert status is not None and status >= 1

    # The dashboard's variables resolve as Grafana would ask.
    (instance,) = prometheus.get("label/instance/values", **{"match[]": "ponder_build_info"})
    assert instance == urlparse(server.base_url).netloc
    strategies = prometheus.get(
        "label/strategy/values", **{"match[]": f'ponder_requests_total{{instance=~"{instance}"}}'}
    )
    assert {"none", "self_consistency", "best_of_n", "compute_optimal"} <= set(strategies)

    def empty_panels() -> list[str]:
        return [
            title
            for title, expr in dashboard_queries()
            if not prometheus.query(_dashboard_expr(expr, instance))
        ]

    # A series the traffic created (a cancelled stream's status, say) has a rate only from its
    # second scrape on: give Prometheus a few scrapes before calling a panel empty.
    deadline = time.monotonic() + 30
    while (empty := empty_panels()) and time.monotonic() < deadline:
        time.sleep(1)
    assert empty == [], f"dashboard queries with no series after the traffic: {empty}"

    for kind, name, expr in rule_queries():
        result = prometheus.query(expr)  # every rule parses and evaluates
        if kind == "record" and name not in NOT_MOVED:
            assert result, f"recording rule {name} has no series after the traffic"
        if name in HEALTH_ALERTS:
            assert result == [], f"{name} holds on a healthy server: {result}"

    # Prometheus loaded every rule and evaluated each without error.
    groups = prometheus.get("rules")["groups"]
    rules = [r for g in groups for r in g["rules"]]
    assert len(rules) == len(rule_queries())
    _until(lambda: all(r["lastEvaluation"] > "2000" for r in prometheus_rules(prometheus)), 30)
    for rule in prometheus_rules(prometheus):
        assert rule["health"] == "ok", rule
    assert json.loads(DASHBOARD.read_text())["uid"] == "ponder"


def prometheus_rules(prometheus: Prometheus) -> list[dict[str, Any]]:
    return [r for g in prometheus.get("rules")["groups"] for r in g["rules"]]
