"""Step searches guided by the model's own confidence (#17) through the real server: the
log-probs come from vLLM with the steps, and the search costs no verifier tokens and no engine
call beyond the steps it generates."""

from __future__ import annotations

import httpx
import pytest
from openai.types.chat import ChatCompletion

from tests.integration.conftest import MODEL, LiveServer, tts_block
from tests.integration.test_search_live import GENERATED, QUESTION

pytestmark = pytest.mark.integration

SMALL = {"max_steps": 3, "step_tokens": 24, "verifier": "confidence", "return_trace": True}
CASES = {
    "prm_beam_search": {"n": 4, "beam_width": 2, **SMALL},
    # Q is the confidence; half the PUCT prior too.
    "mcts": {"simulations": 3, "expansions": 2, "confidence_weight": 0.5, **SMALL},
    # DeepConf's group confidence, which reads 5 alternatives per token.
    "tree_of_thoughts": {
        "breadth": 2,
        "proposals": 2,
        "confidence": "step_lowest_group",
        "confidence_window": 4,
        **SMALL,
    },
}


@pytest.mark.parametrize("strategy", list(CASES))
def test_a_search_guided_by_confidence(server: LiveServer, strategy: str) -> None:
    before = server.metric(GENERATED)
    calls_before = server.metric("ponder_engine_calls_total", strategy=strategy)
    raw = server.client.chat.completions.with_raw_response.create(
        model=MODEL,
        messages=QUESTION,
        max_completion_tokens=48,
        temperature=0.8,
        extra_body={"tts": {"strategy": strategy, **CASES[strategy]}},
    )
    assert raw.http_response.status_code == 200
    response = ChatCompletion.model_validate(raw.http_response.json())
    block = tts_block(response)
    usage = response.usage
    assert usage is not None and usage.completion_tokens > 0
    # Nothing but the steps was generated, and nothing was verified.
    assert block["verifier_tokens"] == 0 and block["verifier_calls"] == 0
    expected = before + usage.completion_tokens
    assert server.wait_metric(GENERATED, expected) == expected
    assert usage.completion_tokens == sum(node["tokens"] for node in block["tree"])
    assert server.metric("ponder_engine_calls_total", strategy=strategy) == (
        calls_before + block["engine_calls"]
    )
    # Every searched step was valued from vLLM's log-probs, within [0, 1].
    values = [n["score"] for n in block["tree"] if n["parent"] is not None and not n.get("rollout")]
    assert values and all(v is not None and 0.0 < v <= 1.0 for v in values)
    assert block["confidence"] == CASES[strategy].get("confidence", "step_mean")


def test_a_bad_confidence_combination_is_refused(server: LiveServer) -> None:
    # One alternative per token cannot give DeepConf's group confidence: a 400 naming the
    # field, before any work (the search used to refuse the confidence verifier outright).
    response = httpx.post(
        f"{server.base_url}/v1/chat/completions",
        json={
            "model": MODEL,
            "messages": QUESTION,
            "tts": {
                "strategy": "mcts",
                "verifier": "confidence",
                "confidence": "step_lowest_group",
                "confidence_top_logprobs": 1,
            },
        },
        timeout=30,
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "tts.confidence_top_logprobs"
