"""The remote engine's pool on two real `vllm serve` processes: one dies mid-run and comes back."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.integration.conftest import MODEL, LiveServer

pytestmark = pytest.mark.integration

QUESTION = [{"role": "user", "content": "What is 23 + 45? Think step by step."}]


def _ask(server: LiveServer, tokens: int) -> int:
    body = {
        "model": MODEL,
        "messages": QUESTION,
        "max_completion_tokens": tokens,
        "ignore_eos": True,
        "tts": {"strategy": "best_of_n", "n": 2, "verifier": "confidence"},
    }
    return httpx.post(f"{server.base_url}/v1/chat/completions", json=body, timeout=300).status_code


def _per_server(server: LiveServer, name: str) -> list[float]:
    return [server.metric(name, server=str(i)) for i in range(2)]


def test_a_server_that_dies_mid_run_fails_over_and_rejoins(remote_server: LiveServer) -> None:
    victim, survivor = remote_server.vllm_servers
    with ThreadPoolExecutor(4) as pool:
        running = [pool.submit(_ask, remote_server, 400) for _ in range(4)]
        # Least load spreads the four requests over both servers; wait until both hold some.
        deadline = time.monotonic() + 120
        while min(_per_server(remote_server, "ponder_engine_server_in_flight")) < 1:
            assert time.monotonic() < deadline, "the requests never reached both servers"
            time.sleep(0.1)
        victim.kill()
        # In-flight requests on the dead server are sent again to the other: all end, none hangs.
        assert [f.result(timeout=300) for f in running] == [200] * 4
    assert remote_server.metric("ponder_engine_server_errors_total", server="0") >= 1
    # Ready while one server is; new requests go to the survivor only.
    assert httpx.get(f"{remote_server.base_url}/ready", timeout=10).status_code == 200
    assert remote_server.metric("ponder_engine_server_up", server="0") == 0
    calls_before = _per_server(remote_server, "ponder_engine_server_calls_total")
    assert _ask(remote_server, 8) == 200
    calls_after = _per_server(remote_server, "ponder_engine_server_calls_total")
    assert calls_after[0] == calls_before[0] and calls_after[1] > calls_before[1]
    # It comes back: a health probe puts it in the pool again.
    victim.start()
    victim.wait_ready()
    assert httpx.get(f"{remote_server.base_url}/ready", timeout=10).status_code == 200
    assert remote_server.metric("ponder_engine_server_up", server="0") == 1
    assert survivor.process is not None and survivor.process.poll() is None
