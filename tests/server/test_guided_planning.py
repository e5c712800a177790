"""Confidence-guided step search (#17) at planning: bad combinations are a 400 naming the
`tts` field before any work, and a guided search runs with no verifier tokens."""

from __future__ import annotations

from typing import Any

import pytest

from tests.scripted import ScriptedEngine
from tests.server.test_http import CHAT, assert_error, chat, serve

GUIDED = {"strategy": "mcts", "verifier": "confidence", "simulations": 2, "expansions": 2}


@pytest.mark.parametrize(
    ("tts", "settings", "param", "message"),
    [
        # DeepConf's group confidence reads 5 alternatives by default; the server serves 4.
        (
            {**GUIDED, "confidence": "step_lowest_group"},
            {"max_logprobs": 4},
            "tts.confidence_top_logprobs",
            "needs 5 log-probs per token",
        ),
        (
            {"strategy": "prm_beam_search", "verifier": "confidence", "confidence_top_logprobs": 8},
            {"max_logprobs": 6},
            "tts.confidence_top_logprobs",
            "needs 8 log-probs per token",
        ),
        # With one alternative the group confidence would be the sampled token's surprisal.
        (
            {**GUIDED, "confidence": "step_lowest_group", "confidence_top_logprobs": 1},
            {},
            "tts.confidence_top_logprobs",
            "at least 2",
        ),
        ({**GUIDED, "confidence": "entropy"}, {}, "tts.confidence", "step_mean"),
        ({**GUIDED, "confidence_weight": 1.5}, {}, "tts.confidence_weight", "1"),
        (
            {"strategy": "tree_of_thoughts", "verifier": "confidence", "confidence_window": 0},
            {},
            "tts.confidence_window",
            "1",
        ),
    ],
)
def test_bad_confidence_guidance_is_a_400_naming_the_field(
    tts: dict[str, Any], settings: dict[str, Any], param: str, message: str
) -> None:
    engine = ScriptedEngine(texts=["5"])
    with serve(engine, **settings) as (client, _):
        resp = client.post(CHAT, json=chat(tts=tts))
    error = assert_error(resp, 400, param)
    assert message in error["message"]
    assert engine.calls == []


def test_a_confidence_guided_search_costs_no_verifier_tokens() -> None:
    engine = ScriptedEngine(texts=["a\n\n", "b\n\n", "so 5", "so 6"])
    with serve(engine) as (client, _):
        resp = client.post(CHAT, json=chat(tts={**GUIDED, "return_trace": True}))
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["tts"]["verifier_tokens"] == 0 and body["tts"]["verifier_calls"] == 0
    assert body["usage"]["completion_tokens"] == sum(
        len(t) for t in ["a\n\n", "b\n\n", "so 5", "so 6"]
    )
    # Every engine call generated steps, each asking for the log-probs the confidence reads.
    assert [c.options.logprobs for c in engine.calls] == [0, 0]
