"""Reasoning on the real engine: budget forcing's continuations, and `reasoning_effort` as a dial.

The embedded model does not think, and the session's server runs vLLM's `olmo3` parser, under
which text without `</think>` is all answer. A thinking cap still applies: every candidate thinks
until the cap (the model never ends on its own), gets `</think>` appended and answers in a second
engine call that continues from its token ids. The mechanics and the accounting are what is
checked, against vLLM's own counter of generated tokens.
"""

from __future__ import annotations

from openai.types.chat import ChatCompletion, ChatCompletionMessageParam

from ponder.strategies.effort import default_presets
from tests.integration.conftest import MODEL, LiveServer, tts_block

GENERATED = "vllm:generation_tokens_total"
QUESTION: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "Explain step by step how to compute 12 + 30."}
]
CAP = 6


def test_budget_forcing_ends_each_candidates_thinking_at_the_cap(
    in_process_server: LiveServer,
) -> None:
    server = in_process_server
    before = server.metric(GENERATED)
    raw = server.client.chat.completions.with_raw_response.create(
        model=MODEL,
        messages=QUESTION,
        max_completion_tokens=40,
        temperature=0.8,
        extra_body={
            "thinking_token_budget": CAP,
            "tts": {"strategy": "self_consistency", "n": 3, "return_trace": True},
        },
    )
    body = raw.http_response.json()
    response = ChatCompletion.model_validate(body)
    tts = tts_block(response)
    # Round one thinks (3 samples of the prompt), round two answers (3 continuations): 2 calls.
    assert tts["engine_calls"] == 2
    assert tts["thinking"]["rounds"] == 2 and tts["thinking"]["forced_ends"] == 3
    appended = tts["thinking"]["appended_tokens"]
    assert appended > 0 and appended % 3 == 0  # `</think>` once per candidate
    # The continuations share the prompt: the prefix cache serves their second call.
    assert tts["cached_prompt_tokens"] > 0
    message = body["choices"][0]["message"]
    assert message["reasoning"]  # the text of the cap's tokens
    usage = response.usage
    assert usage is not None and usage.completion_tokens_details is not None
    # Each candidate: CAP thinking tokens, then its answer; the appended ones are not generated.
    answers = [c["tokens"] - CAP - appended // 3 for c in tts["trace"]]
    assert all(a >= 1 for a in answers)
    assert usage.completion_tokens == 3 * CAP + sum(answers)
    chosen = answers[tts["chosen_index"]]
    assert usage.completion_tokens_details.reasoning_tokens == usage.completion_tokens - chosen
    expected = before + usage.completion_tokens
    assert server.wait_metric(GENERATED, expected) == expected


def test_reasoning_effort_buys_compute_with_standard_fields_only(
    in_process_server: LiveServer,
) -> None:
    server = in_process_server
    spent: dict[str, int] = {}
    explored: dict[str, int] = {}
    presets = default_presets()
    for level in ("none", "medium", "high"):
        before = server.metric(GENERATED)
        response = server.client.chat.completions.create(
            model=MODEL, messages=QUESTION, max_completion_tokens=24, reasoning_effort=level
        )
        tts = tts_block(response)
        assert tts["effort"] == {
            "reasoning_effort": level,
            "presets": presets.name,
            "version": 1,
            "applied": True,
        }
        assert tts["strategy"] == presets.presets[level].tts.get("strategy", "none")
        assert response.usage is not None
        spent[level] = response.usage.completion_tokens
        explored[level] = tts["candidates"]
        expected = before + spent[level]
        assert server.wait_metric(GENERATED, expected) == expected
    # One greedy answer; adaptive self-consistency (4 to 8 samples); 16 samples.
    assert explored["none"] == 1 < explored["medium"] < explored["high"]
    assert spent["none"] < spent["medium"] and spent["none"] < spent["high"]
