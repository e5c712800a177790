"""`/v1/responses` through the official client, structured outputs and `logit_bias`, on the real
engine: the session's servers, the embedded model."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import jsonschema
import openai
import pytest
from openai.types.chat import ChatCompletion
from openai.types.responses import Response

from ponder.server.model_store import prepare_default_model
from tests.integration.conftest import MODEL, LiveServer, both_engines, tts_block

pytestmark = pytest.mark.integration

QUESTION = "What is 3 + 4? Reply with only the final number."
GENERATED = "vllm:generation_tokens_total"
SCHEMA = {
    "type": "object",
    "properties": {"answer": {"type": "integer"}},
    "required": ["answer"],
    "additionalProperties": False,
}


@cache
def tokenizer() -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(prepare_default_model())


def test_responses_through_the_openai_client_typed(server: LiveServer) -> None:
    before = server.metric(GENERATED)
    response = server.client.responses.create(
        model=MODEL,
        instructions="You are a calculator.",
        input=[{"role": "user", "content": QUESTION}],
        max_output_tokens=16,
        temperature=0,
    )
    assert isinstance(response, Response)
    assert response.status in ("completed", "incomplete") and response.output_text.strip()
    assert response.output[0].type == "message"
    usage = response.usage
    assert usage is not None
    # Every generated token is one the engine counted; the prompt holds the instructions.
    assert server.wait_metric(GENERATED, before + usage.output_tokens) == (
        before + usage.output_tokens
    )
    assert usage.output_tokens_details.reasoning_tokens == 0
    messages = [
        {"role": "system", "content": "You are a calculator."},
        {"role": "user", "content": QUESTION},
    ]
    rendered = tokenizer().apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert usage.input_tokens == len(tokenizer().encode(rendered, add_special_tokens=False))
    assert tts_block(response)["strategy"] == "none"


def test_streamed_responses_through_the_openai_client(server: LiveServer) -> None:
    events = list(
        server.client.responses.create(
            model=f"{MODEL}@self_consistency",
            input=QUESTION,
            max_output_tokens=12,
            temperature=0.7,
            stream=True,
            extra_body={"tts": {"n": 3, "return_trace": True}},
        )
    )
    kinds = [e.type for e in events]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-1] in ("response.completed", "response.incomplete")
    assert [e.sequence_number for e in events] == list(range(len(events)))
    final = events[-1].response  # type: ignore[union-attr]
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text and final.output_text == text
    assert final.usage is not None
    tts = tts_block(final)
    assert tts["candidates"] == 3
    # The tokens not returned are the other candidates': every token but the chosen one's.
    chosen = tts["trace"][tts["chosen_index"]]
    assert chosen["text"] == text
    assert final.usage.output_tokens == sum(c["tokens"] for c in tts["trace"])
    reasoning = final.usage.output_tokens_details.reasoning_tokens
    assert reasoning == final.usage.output_tokens - chosen["tokens"]


@both_engines
def test_every_json_schema_candidate_parses_and_validates(server: LiveServer) -> None:
    raw = server.client.chat.completions.with_raw_response.create(
        model=MODEL,
        messages=[{"role": "user", "content": QUESTION + " Answer in JSON."}],
        max_completion_tokens=48,
        temperature=0.8,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "answer", "schema": SCHEMA, "strict": True},
        },
        extra_body={"tts": {"strategy": "self_consistency", "n": 4, "return_trace": True}},
    )
    response = ChatCompletion.model_validate(raw.http_response.json())
    tts = tts_block(response)
    assert len(tts["trace"]) == 4
    for candidate in tts["trace"]:
        assert candidate["finish_reason"] == "stop", candidate
        document = json.loads(candidate["text"])
        jsonschema.validate(document, SCHEMA)
        # Votes are cast on the canonical document.
        assert candidate["answer"] == json.dumps(document, sort_keys=True, separators=(",", ":"))
    content = response.choices[0].message.content or ""
    jsonschema.validate(json.loads(content), SCHEMA)
    assert sum(tts["votes"].values()) == 4


@both_engines
def test_a_schema_the_engine_cannot_compile_is_a_400_naming_the_field(server: LiveServer) -> None:
    # A valid JSON Schema (jsonschema accepts it) whose reference leads nowhere: vLLM's grammar
    # compiler refuses it.
    unresolvable: dict[str, Any] = {"type": "object", "properties": {"a": {"$ref": "#/nope"}}}
    with pytest.raises(openai.BadRequestError) as refused:
        server.client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": QUESTION}],
            max_completion_tokens=8,
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "x", "schema": unresolvable},
            },
        )
    assert refused.value.param == "response_format"


@both_engines
def test_logit_bias_forces_and_bans_tokens(server: LiveServer) -> None:
    plain = server.client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": QUESTION}],
        max_completion_tokens=3,
        temperature=0,
    )
    first = tokenizer().encode(plain.choices[0].message.content or "", add_special_tokens=False)[0]
    banned = server.client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": QUESTION}],
        max_completion_tokens=3,
        temperature=0,
        logit_bias={str(first): -100},
    )
    content = banned.choices[0].message.content or ""
    assert content and tokenizer().encode(content, add_special_tokens=False)[0] != first
    forced_id = tokenizer().encode(" banana", add_special_tokens=False)[-1]
    forced = server.client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": QUESTION}],
        max_completion_tokens=3,
        temperature=0,
        logit_bias={str(forced_id): 100},
    )
    assert forced.choices[0].message.content == tokenizer().decode([forced_id] * 3)
