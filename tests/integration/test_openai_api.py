"""The OpenAI client against the real server: responses, chunks, usage and metrics."""

from __future__ import annotations

import json

import httpx
import pytest
from openai.types import Completion
from openai.types.chat import ChatCompletion, ChatCompletionChunk, ChatCompletionMessageParam

from tests.integration.conftest import MODEL, LiveServer, both_engines, tts_block

pytestmark = pytest.mark.integration

QUESTION: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "What is 3 + 4? Reply with only the final number."}
]
GENERATED = "vllm:generation_tokens_total"


def chat(server: LiveServer, **kwargs: object) -> ChatCompletion:
    """A chat completion, validated strictly against the client's own type."""
    raw = server.client.chat.completions.with_raw_response.create(**kwargs)  # type: ignore[call-overload]
    return ChatCompletion.model_validate(raw.http_response.json())


def sse_chunks(server: LiveServer, path: str, body: dict) -> tuple[list[dict], list[str]]:
    """Every `data:` payload of a stream (JSON decoded) and every raw line."""
    payloads, lines = [], []
    with httpx.stream("POST", f"{server.base_url}{path}", json=body, timeout=120) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            lines.append(line)
            if line.startswith("data: ") and line != "data: [DONE]":
                payloads.append(json.loads(line[len("data: ") :]))
    assert lines[-2:] == ["data: [DONE]", ""] or lines[-1] == "data: [DONE]"
    return payloads, lines


@both_engines
def test_models_list(server: LiveServer) -> None:
    models = server.client.models.list()
    assert [m.id for m in models.data] == [MODEL]


@both_engines
def test_plain_chat_usage_matches_the_engine(server: LiveServer) -> None:
    before = server.metric(GENERATED)
    prompt_before = server.metric("vllm:prompt_tokens_total")
    response = chat(server, model=MODEL, messages=QUESTION, max_completion_tokens=12, temperature=0)
    usage = response.usage
    assert usage is not None and response.choices[0].message.content
    assert server.wait_metric(GENERATED, before + usage.completion_tokens) == (
        before + usage.completion_tokens
    )
    assert server.metric("vllm:prompt_tokens_total") - prompt_before == usage.prompt_tokens
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    details = usage.completion_tokens_details
    assert details is not None and details.reasoning_tokens == 0
    assert 1 <= usage.completion_tokens <= 12
    assert tts_block(response)["strategy"] == "none"


@both_engines
def test_n_choices_and_logprobs(server: LiveServer) -> None:
    response = chat(
        server,
        model=MODEL,
        messages=QUESTION,
        n=3,
        max_completion_tokens=6,
        logprobs=True,
        top_logprobs=2,
    )
    assert [c.index for c in response.choices] == [0, 1, 2]
    for choice in response.choices:
        assert choice.logprobs is not None and choice.logprobs.content
        assert all(len(t.top_logprobs) == 2 for t in choice.logprobs.content)
    tokens = sum(
        len(c.logprobs.content) for c in response.choices if c.logprobs and c.logprobs.content
    )
    assert response.usage is not None and response.usage.completion_tokens == tokens


@both_engines
def test_streamed_plain_chat(server: LiveServer) -> None:
    before = server.metric(GENERATED)
    body = {
        "model": MODEL,
        "messages": QUESTION,
        "max_completion_tokens": 10,
        "n": 2,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    payloads, _ = sse_chunks(server, "/v1/chat/completions", body)
    chunks = [ChatCompletionChunk.model_validate(p) for p in payloads]
    usage_chunks = [c for c in chunks if c.usage is not None]
    assert len(usage_chunks) == 1 and chunks[-1] is usage_chunks[0]
    assert usage_chunks[0].choices == []
    content_chunks = [c for c in chunks[:-1] if c.choices and c.choices[0].delta.content]
    # Tokens arrive as they are generated: more than one content chunk per choice.
    assert len(content_chunks) > 2
    finished = {c.choices[0].index for c in chunks[:-1] if c.choices[0].finish_reason}
    assert finished == {0, 1}
    completion = usage_chunks[0].usage.completion_tokens  # type: ignore[union-attr]
    assert server.wait_metric(GENERATED, before + completion) == before + completion


def test_streamed_with_the_openai_client(server: LiveServer) -> None:
    stream = server.client.chat.completions.create(
        model=f"{MODEL}@self_consistency",
        messages=QUESTION,
        max_completion_tokens=8,
        stream=True,
        extra_body={"tts": {"n": 3}},
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text


@both_engines
def test_best_of_n_with_self_judge(server: LiveServer) -> None:
    before = server.metric(GENERATED)
    ok_before = server.metric("ponder_requests_total", strategy="best_of_n", status="ok")
    judged_before = server.metric("ponder_verifier_calls_total", verifier="self_judge")
    response = chat(
        server,
        model=MODEL,
        messages=QUESTION,
        max_completion_tokens=12,
        temperature=0.8,
        extra_body={"tts": {"strategy": "best_of_n", "n": 4, "return_trace": True}},
    )
    tts = tts_block(response)
    usage = response.usage
    assert usage is not None
    assert tts["candidates"] == 4 and tts["verifier_calls"] == 4
    trace_tokens = sum(c["tokens"] for c in tts["trace"])
    assert usage.completion_tokens == trace_tokens
    chosen = tts["trace"][tts["chosen_index"]]
    assert response.choices[0].message.content == chosen["text"]
    assert chosen["score"] == max(c["score"] for c in tts["trace"])
    details = usage.completion_tokens_details
    assert details is not None and details.reasoning_tokens == trace_tokens - chosen["tokens"]
    # The engine generated the candidates plus one judge token per candidate, nothing else.
    expected = before + usage.completion_tokens + tts["verifier_calls"]
    assert server.wait_metric(GENERATED, expected) == expected
    assert server.metric("ponder_requests_total", strategy="best_of_n", status="ok") == (
        ok_before + 1
    )
    assert server.metric("ponder_verifier_calls_total", verifier="self_judge") == (
        judged_before + 4
    )


@both_engines
def test_weighted_best_of_n_with_confidence(server: LiveServer) -> None:
    response = chat(
        server,
        model=MODEL,
        messages=QUESTION,
        max_completion_tokens=12,
        extra_body={
            "tts": {"strategy": "best_of_n", "n": 4, "weighted": True, "verifier": "confidence"}
        },
    )
    tts = tts_block(response)
    assert tts["verifier"] == "confidence" and tts["verifier_tokens"] == 0
    assert all(0 < s <= 1 for s in tts["scores"])
    assert "answer_weights" in tts


@both_engines
def test_adaptive_self_consistency_by_model_name(server: LiveServer) -> None:
    before = server.metric(GENERATED)
    policy_before = server.metric("ponder_policy_tokens_total", strategy="self_consistency")
    response = chat(
        server,
        model=f"{MODEL}@self_consistency",
        messages=QUESTION,
        max_completion_tokens=12,
        temperature=0.7,
        extra_body={"tts": {"n": 8, "adaptive": True, "return_trace": True}},
    )
    tts = tts_block(response)
    assert tts["strategy"] == "self_consistency"
    # All eight start together; those the decided vote stopped are in the trace, cut short.
    assert tts["candidates"] == 8 and 0 <= tts["stopped"] < 8
    assert sum(tts["votes"].values()) <= 8 - tts["stopped"]
    usage = response.usage
    assert usage is not None
    assert usage.completion_tokens == sum(c["tokens"] for c in tts["trace"])
    assert server.metric("ponder_policy_tokens_total", strategy="self_consistency") == (
        policy_before + usage.completion_tokens
    )
    counted = server.settled_metric(GENERATED) - before
    if server.vllm_servers:
        # A stopped candidate's HTTP stream is closed: tokens the server made but had not sent
        # by then are counted there and not seen here.
        assert counted >= usage.completion_tokens
    else:
        assert counted == usage.completion_tokens


@both_engines
def test_completions_endpoint(server: LiveServer) -> None:
    raw = server.client.completions.with_raw_response.create(
        model=MODEL, prompt=["1, 2, 3,", "a, b, c,"], max_tokens=5, n=2, logprobs=1
    )
    completion = Completion.model_validate(raw.http_response.json())
    assert [c.index for c in completion.choices] == [0, 1, 2, 3]
    assert all(c.logprobs is not None and c.logprobs.tokens for c in completion.choices)
    payloads, _ = sse_chunks(
        server,
        "/v1/completions",
        {"model": MODEL, "prompt": "1, 2, 3,", "max_tokens": 5, "stream": True},
    )
    assert "".join(p["choices"][0]["text"] for p in payloads if p["choices"])
    # The client's type wants a finish_reason, which (as in OpenAI's API) only the last chunk has.
    finals = [p for p in payloads if p["choices"] and p["choices"][0]["finish_reason"]]
    assert len(finals) == 1
    Completion.model_validate(finals[0])


def test_strategies_endpoint(server: LiveServer) -> None:
    listing = httpx.get(f"{server.base_url}/v1/strategies", timeout=10).json()
    names = {s["name"] for s in listing["data"]}
    assert {"none", "best_of_n", "self_consistency"} <= names
    verifiers = {v["name"]: v for v in listing["verifiers"]}
    assert verifiers["self_judge"]["model"] == MODEL
    assert verifiers["confidence"]["kind"] == "programmatic"


@both_engines
def test_streamed_search_sends_keepalives_then_the_chosen_answer(server: LiveServer) -> None:
    body = {
        "model": MODEL,
        "messages": QUESTION,
        "max_completion_tokens": 24,
        "stream": True,
        "stream_options": {"include_usage": True},
        "tts": {"strategy": "best_of_n", "n": 4, "return_trace": True},
    }
    payloads, lines = sse_chunks(server, "/v1/chat/completions", body)
    # The search outlasts the server's 0.5 s keep-alive period in this session.
    assert ": keep-alive" in lines
    chunks = [ChatCompletionChunk.model_validate(p) for p in payloads]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    tts = payloads[-1]["tts"]
    assert text == tts["trace"][tts["chosen_index"]]["text"]
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == sum(c["tokens"] for c in tts["trace"])


def test_metrics_carry_build_info_and_vllm_series(server: LiveServer) -> None:
    text = httpx.get(f"{server.base_url}/metrics", timeout=10).text
    assert f'model="{MODEL}"' in text and "ponder_build_info{" in text
    assert server.metric("vllm:num_requests_running") == 0
    assert "vllm:generation_tokens_total" in text
