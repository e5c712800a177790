"""Every search strategy through the real server: shape, token accounting and metrics."""

from __future__ import annotations

import pytest
from openai.types.chat import ChatCompletion, ChatCompletionMessageParam

from tests.integration.conftest import MODEL, LiveServer, both_engines, tts_block

pytestmark = pytest.mark.integration

QUESTION: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "What is 23 + 45? Think step by step."}
]
GENERATED = "vllm:generation_tokens_total"
SMALL = {"max_steps": 3, "step_tokens": 24, "verifier": "arithmetic"}

# The arithmetic verifier makes no engine call, so the engine's own token counter must move by
# exactly the strategy's policy tokens.
CASES = {
    "prm_beam_search": {"n": 4, "beam_width": 2, **SMALL},
    "prm_beam_search_dvts": {
        "strategy": "prm_beam_search",
        "n": 4,
        "beam_width": 2,
        "dvts": True,
        "lookahead": 1,
        **SMALL,
    },
    "mcts": {"simulations": 3, "expansions": 2, **SMALL},
    "mcts_rollout": {
        "strategy": "mcts",
        "simulations": 2,
        "expansions": 2,
        "value": "rollout",
        **SMALL,
    },
    "tree_of_thoughts": {"breadth": 2, "proposals": 2, **SMALL},
    "tree_of_thoughts_dfs": {
        "strategy": "tree_of_thoughts",
        "method": "dfs",
        "proposals": 2,
        "max_expansions": 3,
        **SMALL,
    },
    "graph_of_thoughts": {"n": 2, "rounds": 1, "aggregations": 1, "verifier": "arithmetic"},
    "rsa": {"population": 2, "subset": 2, "rounds": 1, "verifier": "arithmetic"},
    "self_refine": {"max_rounds": 1, "verifier": "arithmetic"},
}


def trace_tokens(tts: dict) -> int:
    if "tree" in tts:
        return sum(node["tokens"] for node in tts["tree"])
    if "graph" in tts:
        return sum(node["tokens"] for node in tts["graph"])
    answers = sum(candidate["tokens"] for candidate in tts["trace"])
    return answers + sum(sum(chain["critique_tokens"]) for chain in tts["history"])


@pytest.mark.parametrize("case", list(CASES))
@both_engines
def test_search_strategy_through_the_server(server: LiveServer, case: str) -> None:
    tts = {"strategy": case, **CASES[case], "return_trace": True}
    strategy = str(tts["strategy"])
    before = server.metric(GENERATED)
    ok_before = server.metric("ponder_requests_total", strategy=strategy, status="ok")
    policy_before = server.metric("ponder_policy_tokens_total", strategy=strategy)
    engine_calls_before = server.metric("ponder_engine_calls_total", strategy=strategy)
    raw = server.client.chat.completions.with_raw_response.create(
        model=MODEL,
        messages=QUESTION,
        max_completion_tokens=48,
        temperature=0.8,
        extra_body={"tts": tts},
    )
    response = ChatCompletion.model_validate(raw.http_response.json())
    block = tts_block(response)
    usage = response.usage
    assert usage is not None and block["strategy"] == strategy
    chosen = block["trace"][block["chosen_index"]]
    assert response.choices[0].message.content == chosen["text"]
    assert usage.completion_tokens == trace_tokens(block) > 0
    details = usage.completion_tokens_details
    assert details is not None
    assert details.reasoning_tokens == usage.completion_tokens - chosen["tokens"]
    expected = before + usage.completion_tokens
    assert server.wait_metric(GENERATED, expected) == expected
    assert server.metric("ponder_requests_total", strategy=strategy, status="ok") == ok_before + 1
    assert server.metric("ponder_policy_tokens_total", strategy=strategy) == (
        policy_before + usage.completion_tokens
    )
    assert server.metric("ponder_engine_calls_total", strategy=strategy) == (
        engine_calls_before + block["engine_calls"]
    )


@both_engines
def test_token_beam_search_through_the_server(server: LiveServer) -> None:
    before = server.metric(GENERATED)
    response = server.client.chat.completions.create(
        model=MODEL,
        messages=QUESTION,
        max_completion_tokens=12,
        n=2,
        extra_body={"tts": {"strategy": "beam_search", "beam_width": 3}},
    )
    tts = tts_block(response)
    usage = response.usage
    assert usage is not None and len(response.choices) == 2
    assert tts["scores"] == sorted(tts["scores"], reverse=True)
    # One token per live beam per step, and never more than the width allows.
    assert tts["steps"] <= usage.completion_tokens <= 3 * 12
    assert server.wait_metric(GENERATED, before + usage.completion_tokens) == (
        before + usage.completion_tokens
    )
