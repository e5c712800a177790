"""The engine factory and the `Engine` protocol: the app asks an engine nothing else."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from ponder.core.engine import Engine
from ponder.server import engines
from ponder.server.app import create_app
from ponder.server.engines import UnknownEngineError
from ponder.server.settings import Settings
from tests.scripted import ScriptedEngine

started: list[ScriptedEngine] = []


def start_scripted(settings: Settings) -> ScriptedEngine:
    """A registered engine's start function, for the factory test."""
    engine = ScriptedEngine(texts=["4"], max_model_len=settings.max_model_len, version="9.9")
    started.append(engine)
    return engine


def test_scripted_engine_satisfies_the_engine_protocol() -> None:
    # mypy checks the assignment structurally (tests are type-checked); isinstance checks that
    # every member the protocol names is there at run time.
    engine: Engine = ScriptedEngine()
    assert isinstance(engine, Engine)
    for member in ("uses_local_gpu", "version", "max_logprobs", "shutdown"):
        assert hasattr(engine, member)


def test_the_setting_chooses_the_engine_and_the_app_uses_only_its_protocol(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(engines.ENGINES, "scripted", "tests.server.test_engines:start_scripted")
    started.clear()
    app = create_app(Settings(engine="scripted", max_model_len=1000))
    with TestClient(app) as client:
        body = {"model": "scripted-model", "messages": [{"role": "user", "content": "2+2?"}]}
        reply = client.post("/v1/chat/completions", json=body)
        metrics = client.get("/metrics").text
    assert reply.status_code == 200, reply.text
    assert reply.json()["choices"][0]["message"]["content"] == "4"
    [engine] = started
    assert engine.max_model_len == 1000
    assert 'engine_version="9.9"' in metrics
    assert 'ponder_engine_calls_total{strategy="none"} 1.0' in metrics
    # The app started the engine, so the app stops it.
    assert engine.shut_down


def test_an_unknown_engine_stops_start_up_naming_the_known_ones() -> None:
    app = create_app(Settings(engine="remote-nope"))
    unknown = pytest.raises(
        UnknownEngineError, match="'remote-nope' is not an engine; known: remote, vllm"
    )
    with unknown, TestClient(app):
        pass
