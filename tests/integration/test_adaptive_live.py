"""Adaptive self-consistency and DeepConf online on the real engine: every sample starts at once,
the stopped ones are aborted in vLLM, and usage is exactly what the engine counted.

The requests are seeded, so that each run of the session draws the same samples (each candidate
is its own vLLM request with its own seed); on an easy question the vote is decided before the
longest samples end, and the strategies spend fewer tokens than the fixed vote.
"""

from __future__ import annotations

from typing import Any

import pytest
from openai.types.chat import ChatCompletion, ChatCompletionMessageParam

from tests.integration.conftest import MODEL, LiveServer, tts_block

pytestmark = pytest.mark.integration

GENERATED = "vllm:generation_tokens_total"
EASY: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "What is 2 + 3? Explain briefly, then give the final number."}
]
SEED = 5


def ask(server: LiveServer, tts: dict[str, Any]) -> tuple[ChatCompletion, int]:
    """The response, and what the engine's own counter says the request generated."""
    before = server.metric(GENERATED)
    raw = server.client.chat.completions.with_raw_response.create(
        model=MODEL,
        messages=EASY,
        max_completion_tokens=96,
        temperature=0.7,
        seed=SEED,
        extra_body={"tts": {**tts, "return_trace": True}},
    )
    assert raw.http_response.status_code == 200
    response = ChatCompletion.model_validate(raw.http_response.json())
    assert response.usage is not None
    counted = server.wait_metric(GENERATED, before + response.usage.completion_tokens) - before
    return response, int(counted)


@pytest.fixture(scope="module")
def fixed_tokens(in_process_server: LiveServer) -> int:
    response, counted = ask(in_process_server, {"strategy": "self_consistency", "n": 16})
    assert response.usage is not None and counted == response.usage.completion_tokens
    return counted


@pytest.mark.parametrize(
    "tts",
    [
        {"strategy": "self_consistency", "n": 16, "adaptive": True},
        {"strategy": "deepconf", "n": 16, "mode": "online", "warmup": 4, "window": 8},
    ],
    ids=["adaptive_self_consistency", "deepconf_online"],
)
def test_adaptive_methods_stop_samples_and_count_them_exactly(
    in_process_server: LiveServer, fixed_tokens: int, tts: dict[str, Any]
) -> None:
    response, counted = ask(in_process_server, tts)
    block = tts_block(response)
    usage = response.usage
    assert usage is not None and block["strategy"] == tts["strategy"]
    assert block["candidates"] == 16 and block["stopped"] >= 1
    trace = block["trace"]
    # A stopped sample was cut short, which OpenAI's finish reasons call "length"; it has no vote.
    cut = [c for c in trace if c["finish_reason"] == "length" and c["answer"] is None]
    assert len(cut) >= block["stopped"]
    # The stopped samples' tokens are counted: what the engine generated, no more, no less.
    assert usage.completion_tokens == sum(c["tokens"] for c in trace) == counted
    assert usage.completion_tokens < fixed_tokens
    assert response.choices[0].message.content


def test_deepconf_online_has_the_engine_end_traces_at_the_threshold(
    in_process_server: LiveServer,
) -> None:
    # A high threshold (the warm-up's 90% quantile) and no stop for consensus: most traces fall
    # below it after it is set, which the engine's logits processor then ends itself.
    ended = "vllm:request_success_total"
    before = in_process_server.metric(ended, finished_reason="stop")
    tts = {"strategy": "deepconf", "n": 16, "warmup": 2, "window": 8, "keep": 0.9, "consensus": 1}
    response, counted = ask(in_process_server, tts)
    block = tts_block(response)
    assert response.usage is not None and response.usage.completion_tokens == counted
    trace = block["trace"]
    natural = sum(c["finish_reason"] == "stop" for c in trace)
    stopped = in_process_server.settled_metric(ended, finished_reason="stop") - before
    # vLLM counts the traces its engine ended as stopped at their end-of-sequence token; the
    # response reports them as cut short, out of the vote, with the strategy's own stops.
    by_engine = stopped - natural
    assert by_engine >= 1
    assert block["stopped_low_confidence"] >= by_engine
    cut = [c for c in trace if c["finish_reason"] == "length" and c["answer"] is None]
    assert len(cut) >= block["stopped_low_confidence"]
