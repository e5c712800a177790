"""Checks made before any work: the model first, then what the strategy and verifiers need."""

from __future__ import annotations

from typing import Any

import pytest

from tests.scripted import ScriptedEngine
from tests.server.test_http import CHAT, assert_error, chat, serve


def test_a_wrong_model_is_a_404_before_the_template_is_rendered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine = ScriptedEngine(texts=["4"])
    rendered: list[Any] = []
    monkeypatch.setattr(engine, "render_chat", lambda messages, **_: rendered.append(messages))
    monkeypatch.setattr(engine, "encode", lambda text: rendered.append(text))
    with serve(engine) as (client, _):
        wrong_chat = client.post(CHAT, json={**chat(), "model": "other@best_of_n"})
        wrong_completion = client.post("/v1/completions", json={"model": "other", "prompt": "2+2="})
    assert_error(wrong_chat, 404, "model", code="model_not_found")
    assert_error(wrong_completion, 404, "model", code="model_not_found")
    assert rendered == [] and engine.calls == []
