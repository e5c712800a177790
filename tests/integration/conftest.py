"""The real server on the real vLLM CPU engine with the embedded model, started once per session."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ponder.strategies.policy import default_policy
from tests.verifiers import tiny_models

MODEL = "smollm2-135m-instruct"
# A tiny random-weight Qwen2.5-Math-PRM-style model, configured as a verifier of the session's
# server: its scores mean nothing, but it runs the whole path of a model-backed verifier.
TINY_PRM = "tiny_prm"
# The same family in the layout vLLM implements, so it runs on vLLM's pooling runner.
VLLM_PRM = "vllm_prm"
# An outcome reward model (a sequence classifier) that vLLM builds from the causal LM it has.
VLLM_ORM = "vllm_orm"
_START_TIMEOUT_S = 900


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LiveServer:
    base_url: str
    log: Path
    models: Path
    # The server's --policy-table: the shipped table at start, rewritten by the calibration test.
    policy_table: Path

    @property
    def client(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.base_url}/v1", api_key="unused", max_retries=0)

    def metrics(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        text = httpx.get(f"{self.base_url}/metrics", timeout=10).text
        return {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }

    def metric(self, name: str, **labels: str) -> float:
        """Sum of the series called `name` whose labels include `labels`."""
        wanted = set(labels.items())
        return sum(
            value
            for (series, have), value in self.metrics().items()
            if series == name and wanted <= set(have)
        )

    def settled_metric(self, name: str, **labels: str) -> float:
        """The value once it stops moving (for counters whose final value is not known)."""
        value, previous = self.metric(name, **labels), None
        while value != previous:
            time.sleep(0.3)
            value, previous = self.metric(name, **labels), value
        return value

    def wait_metric(
        self, name: str, expected: float, timeout: float = 10.0, **labels: str
    ) -> float:
        """vLLM updates its counters just after it hands out the last output: poll briefly."""
        deadline = time.monotonic() + timeout
        value = self.metric(name, **labels)
        while value != expected and time.monotonic() < deadline:
            time.sleep(0.05)
            value = self.metric(name, **labels)
        return value


def start_server(log: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    """`ponder serve` on a free port with `env` added, once it answers /ready."""
    port = _free_port()
    command = [sys.executable, "-m", "ponder.server.cli", "serve", "--port", str(port)]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **env}
        )
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + _START_TIMEOUT_S
    while True:
        if process.poll() is not None:
            pytest.fail(f"the server exited at start-up:\n{log.read_text()[-4000:]}")
        try:
            if httpx.get(f"{base_url}/ready", timeout=2).status_code == 200:
                return process, base_url
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"the server was not ready in time:\n{log.read_text()[-4000:]}")
        time.sleep(1)


def stop_server(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    log = tmp_path_factory.mktemp("server") / "server.log"
    models = tmp_path_factory.mktemp("models")
    prm = tiny_models.build(models / "prm", "qwen_prm")
    pooled = tiny_models.build_process_reward_model(models / "vllm_prm")
    classifier = tiny_models.build(models / "vllm_orm", "orm", vllm_sized=True)
    verifiers = [
        {"name": TINY_PRM, "family": "qwen_prm", "model": str(prm), "device": "cpu"},
        {"name": VLLM_PRM, "family": "qwen_prm", "model": str(pooled)},
        {"name": VLLM_ORM, "family": "orm", "model": str(classifier)},
    ]
    policy_table = tmp_path_factory.mktemp("policy") / "policy.json"
    policy_table.write_text(default_policy().model_dump_json(exclude_none=True))
    env = {
        "PONDER_POLICY_TABLE": str(policy_table),
        "PONDER_VERIFIERS": json.dumps(verifiers),
        "PONDER_MAX_MODEL_LEN": "2048",
        "PONDER_MAX_CONCURRENT_REQUESTS": "32",
        "PONDER_KEEPALIVE_S": "0.5",
    }
    process, base_url = start_server(log, env)
    try:
        yield LiveServer(base_url, log, models, policy_table)
    finally:
        stop_server(process)
