"""The real server on the real vLLM CPU engine with the embedded model, started once per session.

Tests marked `both_engines` run twice: on that server (the in-process engine) and on Ponder's
remote engine over two `vllm serve` processes (`remote_servers.py`), also started once per session.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai import BaseModel
from prometheus_client.parser import text_string_to_metric_families

from ponder.server.model_store import prepare_default_model
from ponder.strategies.policy import default_policy
from tests.integration.remote_servers import (
    POOLING_PRM_FLAGS,
    VLLMServer,
    remote_ponder,
    start_ponder,
    stop_process,
)
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
REASONING_PARSER = "olmo3"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that start a server of their own run first, before the session's shared servers
    (the in-process one, and the remote engine's vLLM servers) start and stay up: the machine
    then never holds them all at once (CI has 2 cores and 24 GiB)."""
    items.sort(key=lambda item: item.get_closest_marker("own_server") is None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tts_block(response: BaseModel) -> dict[str, Any]:
    """The `tts` block of a response read by the openai client, which keeps it as an extra field."""
    extra = response.model_extra
    assert extra is not None
    tts: dict[str, Any] = extra["tts"]
    return tts


@dataclass
class LiveServer:
    base_url: str
    log: Path
    models: Path
    # The server's --policy-table: the shipped table at start, rewritten by the calibration test.
    policy_table: Path
    # With the remote engine: the vLLM servers, whose own `vllm:*` series are read from them.
    vllm_servers: list[VLLMServer] = field(default_factory=list)

    @property
    def client(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.base_url}/v1", api_key="unused", max_retries=0)

    def metrics(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        """Ponder's series and the engine's: in process on one page, else summed over servers."""
        found: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        pages = [f"{self.base_url}/metrics", *(f"{s.url}/metrics" for s in self.vllm_servers)]
        for page in pages:
            try:
                text = httpx.get(page, timeout=10).text
            except httpx.HTTPError:
                if page == pages[0]:
                    raise
                continue  # a vLLM server a test killed
            for family in text_string_to_metric_families(text):
                for sample in family.samples:
                    key = (sample.name, frozenset(sample.labels.items()))
                    found[key] = found.get(key, 0.0) + sample.value
        return found

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


ENGINES = ["in_process", "remote"]
# Runs a test on the in-process engine and on the remote engine (the same assertions).
both_engines = pytest.mark.parametrize("server", ENGINES, indirect=True)


@pytest.fixture
def server(request: pytest.FixtureRequest) -> LiveServer:
    engine = getattr(request, "param", "in_process")
    live: LiveServer = request.getfixturevalue(f"{engine}_server")
    return live


def start_server(log: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    """`ponder serve` (in-process engine) on a free port with `env` added, once it is ready."""
    try:
        return start_ponder(log, env, port=_free_port(), timeout=_START_TIMEOUT_S)
    except RuntimeError as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="session")
def in_process_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
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
        # vLLM's own olmo3 parser: text without `</think>` is all answer, so the embedded model
        # (which never thinks) answers as before, and budget forcing's appended `</think>` splits.
        "PONDER_REASONING_PARSER": REASONING_PARSER,
    }
    process, base_url = start_server(log, env)
    try:
        yield LiveServer(base_url, log, models, policy_table)
    finally:
        stop_process(process)


@pytest.fixture(scope="session")
def remote_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """Ponder's remote engine on two `vllm serve` processes, and the tiny PRM on a vLLM pooling
    server of its own as the remote verifier `vllm_prm`: nothing runs a model in Ponder."""
    model = prepare_default_model()
    logs = tmp_path_factory.mktemp("remote")
    servers = [VLLMServer(model, MODEL, _free_port(), logs / f"vllm{i}.log") for i in range(2)]
    prm_folder = tiny_models.build_process_reward_model(logs / VLLM_PRM)
    prm = VLLMServer(prm_folder, VLLM_PRM, _free_port(), logs / "prm.log", POOLING_PRM_FLAGS)
    verifiers = [
        {"name": VLLM_PRM, "family": "qwen_prm", "model": str(prm_folder), "backend": "remote"}
        | {"url": prm.url}
    ]
    policy_table = logs / "policy.json"
    policy_table.write_text(default_policy().model_dump_json(exclude_none=True))
    env = {
        **os.environ,
        "PONDER_POLICY_TABLE": str(policy_table),
        "PONDER_VERIFIERS": json.dumps(verifiers),
        "PONDER_MAX_CONCURRENT_REQUESTS": "32",
        "PONDER_KEEPALIVE_S": "0.5",
    }
    try:
        for vllm in [*servers, prm]:  # all start at once
            vllm.start()
        for vllm in [*servers, prm]:
            vllm.wait_ready()
        with remote_ponder(servers, model, _free_port(), logs / "ponder.log", env) as url:
            yield LiveServer(url, logs / "ponder.log", logs, policy_table, servers)
    finally:
        for vllm in [*servers, prm]:
            vllm.stop()
