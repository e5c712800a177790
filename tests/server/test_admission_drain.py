"""Admission before the response starts, the drain, and what the API exposes without the key."""

from __future__ import annotations

import signal
import socket
import threading
import time
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from ponder.server.app import create_app
from ponder.server.drain import DrainingServer, drain
from ponder.server.settings import Settings
from ponder.verifiers.loading import load_configured_verifiers
from tests.scripted import ScriptedEngine
from tests.server.test_http import CHAT, assert_error, chat, metric_samples, serve, sse_events


def wait_for(client: TestClient, text: str) -> None:
    deadline = time.monotonic() + 10
    while text not in client.get("/metrics").text:
        assert time.monotonic() < deadline, f"never saw {text!r} in /metrics"
        time.sleep(0.01)


def in_background(client: TestClient, body: dict[str, Any]) -> tuple[threading.Thread, dict]:
    result: dict[str, Any] = {}
    worker = threading.Thread(target=lambda: result.update(resp=client.post(CHAT, json=body)))
    worker.start()
    return worker, result


def running_slow_request(client: TestClient) -> tuple[threading.Thread, dict]:
    """A request in the background that the server is running (its engine sleeps)."""
    worker, result = in_background(client, chat(tts={"strategy": "self_consistency", "n": 1}))
    wait_for(client, "ponder_requests_running 1.0")
    return worker, result


@pytest.mark.parametrize("stream", [False, True])
def test_a_full_server_refuses_streamed_and_plain_requests_with_429(stream: bool) -> None:
    engine = ScriptedEngine(texts=["slow", "never"], delay=1.0)
    with serve(engine, max_concurrent_requests=1, max_queued_requests=0) as (client, _):
        worker, first = running_slow_request(client)
        try:
            resp = client.post(CHAT, json=chat(stream=stream))
            samples = metric_samples(client.get("/metrics").text)
        finally:
            worker.join()
    # A status the client can retry on, not a 200 with an error event inside.
    error = assert_error(resp, 429, None, "server_busy")
    assert error["type"] == "rate_limit_error"
    assert resp.headers["Retry-After"] == "1"
    assert samples[("ponder_requests_total", (("status", "busy"), ("strategy", "none")))] == 1
    assert first["resp"].status_code == 200
    assert len(engine.calls) == 1


def test_concurrent_streams_are_admitted_or_refused_before_they_start() -> None:
    # All arrive together: none may learn of the refusal from inside a 200 stream.
    engine = ScriptedEngine(texts=["ok"] * 8, delay=0.3)
    with serve(engine, max_concurrent_requests=1, max_queued_requests=1) as (client, _):
        workers = [in_background(client, chat(stream=True)) for _ in range(8)]
        for worker, _result in workers:
            worker.join()
        after = metric_samples(client.get("/metrics").text)
    responses = [result["resp"] for _worker, result in workers]
    assert {r.status_code for r in responses} == {200, 429}
    for resp in responses:
        if resp.status_code == 200:
            events = sse_events(resp.text)
            assert events[-1] == "[DONE]" and not any("error" in e for e in events[:-1])
        else:
            assert_error(resp, 429, None, "server_busy")
            assert resp.headers["Retry-After"] == "1"
    served = sum(r.status_code == 200 for r in responses)
    assert served == len(engine.calls)
    busy = ("ponder_requests_total", (("status", "busy"), ("strategy", "none")))
    assert after[busy] == len(responses) - served


def test_a_queued_stream_starts_once_it_has_a_slot() -> None:
    engine = ScriptedEngine(texts=["first", "second"], delay=0.5)
    with serve(engine, max_concurrent_requests=1, max_queued_requests=1) as (client, _):
        worker, first = running_slow_request(client)
        try:
            resp = client.post(CHAT, json=chat(stream=True))
        finally:
            worker.join()
        after = metric_samples(client.get("/metrics").text)
    assert resp.status_code == 200
    events = sse_events(resp.text)[:-1]
    assert "".join(e["choices"][0]["delta"].get("content", "") for e in events) == "second"
    assert first["resp"].status_code == 200
    assert after[("ponder_requests_running", ())] == 0
    assert after[("ponder_requests_waiting", ())] == 0


def test_drain_finishes_in_flight_requests_and_refuses_new_ones() -> None:
    engine = ScriptedEngine(texts=["done"], delay=1.0)
    with serve(engine) as (client, _):
        app: Any = client.app
        worker, first = running_slow_request(client)
        drained: dict[str, bool] = {}
        drainer = threading.Thread(
            target=lambda: drained.update(ok=client.portal.call(drain, app, 30.0))  # type: ignore[union-attr]
        )
        drainer.start()
        wait_for(client, "ponder_draining 1.0")
        ready = client.get("/ready")
        refused = client.post(CHAT, json=chat())
        refused_stream = client.post(CHAT, json=chat(stream=True))
        health = client.get("/health")
        worker.join()
        drainer.join()
        samples = metric_samples(client.get("/metrics").text)
    assert (ready.status_code, ready.json()) == (503, {"status": "draining"})
    for resp in (refused, refused_stream):
        error = assert_error(resp, 503, None, "server_draining")
        assert error["type"] == "service_unavailable_error"
        assert resp.headers["Retry-After"] == "1"
    # Liveness is not readiness: a draining server is alive.
    assert health.status_code == 200
    assert first["resp"].status_code == 200
    assert first["resp"].json()["choices"][0]["message"]["content"] == "done"
    assert drained == {"ok": True}
    assert samples[("ponder_requests_total", (("status", "draining"), ("strategy", "none")))] == 2
    assert samples[("ponder_requests_total", (("status", "ok"), ("strategy", "self_consistency")))]
    assert samples[("ponder_requests_running", ())] == 0


def test_drain_gives_up_after_the_grace_period() -> None:
    engine = ScriptedEngine(texts=["late"], delay=2.0)
    with serve(engine) as (client, _):
        app: Any = client.app
        worker, first = running_slow_request(client)
        finished = client.portal.call(drain, app, 0.1)  # type: ignore[union-attr]
        worker.join()
    assert finished is False
    # The drain itself cuts nothing; the server's shutdown does, after it.
    assert first["resp"].status_code == 200


# -- exposure ----------------------------------------------------------------------------------

DOCS = ("/openapi.json", "/docs", "/redoc")


def test_docs_and_metrics_are_public_by_default_even_with_a_key() -> None:
    with serve(api_key="k") as (client, _):
        statuses = {path: client.get(path).status_code for path in (*DOCS, "/metrics")}
        schema = client.get("/openapi.json").json()
    assert statuses == dict.fromkeys((*DOCS, "/metrics"), 200)
    # The request bodies are described, though the routes read raw JSON.
    body = schema["paths"]["/v1/chat/completions"]["post"]["requestBody"]
    ref = body["content"]["application/json"]["schema"]["$ref"]
    assert ref == "#/components/schemas/ChatCompletionRequest"
    assert "messages" in schema["components"]["schemas"]["ChatCompletionRequest"]["properties"]


def test_docs_and_metrics_can_be_put_behind_the_key() -> None:
    settings: dict[str, Any] = {"api_key": "k", "public_docs": False, "metrics_require_key": True}
    key = {"Authorization": "Bearer k"}
    with serve(**settings) as (client, _):
        anonymous = {path: client.get(path) for path in (*DOCS, "/metrics")}
        keyed = {path: client.get(path, headers=key).status_code for path in (*DOCS, "/metrics")}
        probes = (client.get("/health").status_code, client.get("/ready").status_code)
    for resp in anonymous.values():
        assert_error(resp, 401, None, "invalid_api_key")
    assert keyed == dict.fromkeys((*DOCS, "/metrics"), 200)
    assert probes == (200, 200)


# -- the drain in uvicorn --------------------------------------------------------------------


def test_sigterm_in_uvicorn_drains_then_stops_serving() -> None:
    engine = ScriptedEngine(texts=["done"], delay=1.0)
    app = create_app(Settings(), engine=engine, verifiers=load_configured_verifiers(engine))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = DrainingServer(app, 30.0, host="127.0.0.1", port=port, log_level="warning")
    # Off the main thread uvicorn installs no signal handlers; the signal is delivered by hand.
    serving = threading.Thread(target=server.run)
    serving.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and serving.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    first: dict[str, Any] = {}
    slow = chat(tts={"strategy": "self_consistency", "n": 1})
    worker = threading.Thread(
        target=lambda: first.update(resp=httpx.post(f"{base}{CHAT}", json=slow, timeout=30))
    )
    worker.start()
    while "ponder_requests_running 1.0" not in httpx.get(f"{base}/metrics").text:
        assert time.monotonic() < deadline, "the request never started"
        time.sleep(0.01)
    server.handle_exit(signal.SIGTERM, None)
    ready = httpx.get(f"{base}/ready")
    while ready.status_code == 200:
        assert time.monotonic() < deadline, "/ready never turned 503"
        ready = httpx.get(f"{base}/ready")
    refused = httpx.post(f"{base}{CHAT}", json=chat())
    worker.join()
    serving.join(timeout=30)
    assert not serving.is_alive(), "uvicorn kept running after the drain"
    assert ready.json() == {"status": "draining"}
    assert_error(refused, 503, None, "server_draining")
    assert first["resp"].status_code == 200
    assert first["resp"].json()["choices"][0]["message"]["content"] == "done"
    # The socket is closed once the drain is over.
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{base}/health")
