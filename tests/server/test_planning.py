"""Checks made before any work: the model first, then what the strategy and verifiers need."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ponder.server.policies import PolicyStore, policy_check
from ponder.strategies.policy import PolicyError
from tests.scripted import ScriptedEngine
from tests.server.test_http import CHAT, assert_error, best_of_n, chat, judge_66, serve


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


@pytest.mark.parametrize(
    ("tts", "settings", "engine_kw", "param", "wanted", "served"),
    [
        # Token beam search reads 2 x width alternatives per step.
        ({"strategy": "beam_search", "beam_width": 16}, {}, {}, "tts.beam_width", 32, 20),
        # A judge reads 20 alternatives at its verdict.
        (best_of_n(3), {"max_logprobs": 10}, {}, "tts.verifier", 20, 10),
        (
            {"strategy": "prm_beam_search", "verifier": "step_judge"},
            {"max_logprobs": 8},
            {},
            "tts.verifier",
            20,
            8,
        ),
        # The engine's own limit counts when it is below the flag.
        (
            {"strategy": "beam_search", "beam_width": 4},
            {},
            {"max_logprobs": 5},
            "tts.beam_width",
            8,
            5,
        ),
    ],
)
def test_log_prob_needs_beyond_what_is_served_are_a_400_before_any_work(
    tts: dict[str, Any],
    settings: dict[str, Any],
    engine_kw: dict[str, Any],
    param: str,
    wanted: int,
    served: int,
) -> None:
    engine = ScriptedEngine(texts=["5", "66", "777"], judge=judge_66, **engine_kw)
    with serve(engine, **settings) as (client, _):
        resp = client.post(CHAT, json=chat(tts=tts))
    error = assert_error(resp, 400, param)
    assert f"needs {wanted} log-probs per token" in error["message"]
    assert f"serves at most {served} (--max-logprobs)" in error["message"]
    assert engine.calls == []


def test_needs_within_what_is_served_run() -> None:
    engine = ScriptedEngine(texts=["5", "66", "777"], judge=judge_66)
    with serve(engine, max_logprobs=20) as (client, _):
        resp = client.post(CHAT, json=chat(tts=best_of_n(3)))
    assert resp.status_code == 200, resp.text
    judged = [c for c in engine.calls if c.options.logprobs == 20]
    assert len(judged) == 1


def test_a_policy_table_whose_option_needs_more_log_probs_stops_start_up(
    tmp_path: Path,
) -> None:
    path = tmp_path / "policy.json"
    option = {"tts": {"strategy": "beam_search", "beam_width": 16}}
    table = {"bins": [{"name": "all", "max_difficulty": 1.0, "options": [option]}]}
    path.write_text(json.dumps(table))
    store = PolicyStore(path)
    store.validate_with(policy_check({}, max_tts_n=64, max_logprobs=32))
    with pytest.raises(PolicyError, match=r"needs 32 log-probs per token \(tts.beam_width\)"):
        store.validate_with(policy_check({}, max_tts_n=64, max_logprobs=20))
