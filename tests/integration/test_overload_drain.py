"""Overload and SIGTERM on a real server of their own (small admission limits, no verifiers).

One server serves this module: the overload test first, then the drain test, which ends it. It
starts without model-backed verifiers, so it is up in about the time the engine takes.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.integration.conftest import MODEL, LiveServer, start_server, stop_process

pytestmark = [pytest.mark.integration, pytest.mark.own_server]

GRACE_S = 60
CHAT_URL = "/v1/chat/completions"
QUESTION = [{"role": "user", "content": "Write a long story about a dragon."}]


@pytest.fixture(scope="module")
def small_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[LiveServer, subprocess.Popen[bytes]]]:
    folder = tmp_path_factory.mktemp("small_server")
    env = {
        "PONDER_MAX_MODEL_LEN": "1024",
        "PONDER_MAX_CONCURRENT_REQUESTS": "2",
        "PONDER_MAX_QUEUED_REQUESTS": "2",
        "PONDER_DRAIN_GRACE_S": str(GRACE_S),
        "PONDER_KEEPALIVE_S": "0.5",
    }
    process, base_url = start_server(folder / "server.log", env)
    try:
        yield LiveServer(base_url, folder / "server.log", folder, folder / "none.json"), process
    finally:
        stop_process(process)


def body(strategy: str, stream: bool, tokens: int) -> dict[str, Any]:
    tts: dict[str, Any] = {"strategy": strategy}
    if strategy != "none":
        tts.update({"n": 2, **({"verifier": "confidence"} if strategy == "best_of_n" else {})})
    return {
        "model": MODEL,
        "messages": QUESTION,
        "max_completion_tokens": tokens,
        "ignore_eos": True,
        "stream": stream,
        "tts": tts,
    }


def assert_refusal(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["Retry-After"] == "1"
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["code"] == code


def assert_served(response: httpx.Response, stream: bool) -> None:
    assert response.status_code == 200, response.text
    if stream:
        lines = [line for line in response.text.splitlines() if line.startswith("data: ")]
        assert lines[-1] == "data: [DONE]"
        assert not any('"error"' in line for line in lines)
    else:
        assert response.json()["choices"][0]["message"]["content"]


async def test_overload_is_refused_with_429s_only(
    small_server: tuple[LiveServer, subprocess.Popen[bytes]],
) -> None:
    server, _ = small_server
    busy_before = server.metric("ponder_requests_total", status="busy")
    cases = [
        (strategy, i % 2 == 1)
        for i, strategy in enumerate(["none", "best_of_n", "self_consistency"] * 6)
    ]
    async with httpx.AsyncClient(base_url=server.base_url, timeout=300) as client:
        # Every request is sent and answered: no connection may be dropped.
        responses = await asyncio.gather(
            *(client.post(CHAT_URL, json=body(s, stream, 48)) for s, stream in cases)
        )
    refused = 0
    for (_strategy, stream), response in zip(cases, responses, strict=True):
        if response.status_code == 429:
            assert_refusal(response, 429, "server_busy")
            refused += 1
        else:
            assert_served(response, stream)
    # 2 running and 2 queued at most: of 18 sent together, most are turned away.
    assert 0 < refused <= len(cases) - 4
    assert server.metric("ponder_requests_total", status="busy") == busy_before + refused
    assert server.metric("ponder_requests_running") == 0
    assert server.metric("ponder_requests_waiting") == 0


async def test_sigterm_drains_in_flight_requests_then_exits(
    small_server: tuple[LiveServer, subprocess.Popen[bytes]],
) -> None:
    server, process = small_server
    async with httpx.AsyncClient(base_url=server.base_url, timeout=300) as client:
        in_flight = [
            asyncio.create_task(client.post(CHAT_URL, json=body("none", stream, 300)))
            for stream in (False, True)
        ]
        deadline = time.monotonic() + 60
        while server.metric("ponder_requests_running") < 2:
            assert time.monotonic() < deadline, "the requests never started"
            await asyncio.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()

        ready = await client.get("/ready")
        while ready.status_code == 200:
            assert time.monotonic() - signalled < 10, "/ready kept answering 200"
            await asyncio.sleep(0.05)
            ready = await client.get("/ready")
        assert (ready.status_code, ready.json()) == (503, {"status": "draining"})
        assert server.metric("ponder_draining") == 1
        # The truth about the requests still being served.
        assert server.metric("ponder_requests_running") == 2
        refused = await client.post(CHAT_URL, json=body("none", False, 8))
        assert_refusal(refused, 503, "server_draining")
        refused_stream = await client.post(CHAT_URL, json=body("best_of_n", True, 8))
        assert_refusal(refused_stream, 503, "server_draining")

        plain, streamed = await asyncio.gather(*in_flight)
    assert_served(plain, stream=False)
    assert plain.json()["usage"]["completion_tokens"] == 300
    assert plain.json()["choices"][0]["finish_reason"] == "length"
    assert_served(streamed, stream=True)
    # The process goes once they are done, within the grace period.
    process.wait(timeout=GRACE_S)
    log = server.log.read_text()
    assert "drained: every admitted request finished" in log
    assert "Traceback" not in log
