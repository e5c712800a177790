"""`/v1/responses` on the real app and the scripted engine: the official client's types, streamed
and not, the mapping onto chat, and errors that name the Responses field."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from ponder.core.engine import StructuredOutput
from ponder.server.errors import APIError
from ponder.server.responses_adapter import adapt
from tests.server.test_http import MODEL, assert_error, serve

RESPONSES = "/v1/responses"
EVENTS: TypeAdapter[ResponseStreamEvent] = TypeAdapter(ResponseStreamEvent)


def sse(text: str) -> list[dict[str, Any]]:
    """Every event of a Responses stream, its `event:` name checked against its `type`."""
    events, name = [], None
    for line in text.splitlines():
        if line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line.startswith("data: "):
            payload = json.loads(line.removeprefix("data: "))
            assert payload["type"] == name
            events.append(payload)
        else:
            assert line == "" or line.startswith(":"), line
    return events


def test_the_official_client_gets_a_typed_response_with_usage_and_tts() -> None:
    with serve() as (http, engine):
        engine.texts = ["It is 4."]
        client = openai.OpenAI(base_url="http://testserver/v1", api_key="x", http_client=http)
        response = client.responses.create(
            model=MODEL,
            input="What is 2+2?",
            instructions="Be brief.",
            max_output_tokens=50,
            temperature=0.5,
        )
    assert isinstance(response, Response)
    assert response.output_text == "It is 4."
    assert response.status == "completed" and response.object == "response"
    assert response.id.startswith("resp-") and (response.model_extra or {})["store"] is False
    prompt = engine.calls[0].prompt_texts()[0]
    assert prompt == "<system>Be brief.\n<user>What is 2+2?\n<assistant>"
    assert engine.calls[0].options.max_tokens == 50
    assert engine.calls[0].options.temperature == 0.5
    usage = response.usage
    assert usage is not None
    assert usage.input_tokens == len(prompt) and usage.output_tokens == len("It is 4.")
    assert usage.output_tokens_details.reasoning_tokens == 0
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens
    tts = (response.model_extra or {})["tts"]
    assert tts["strategy"] == "none" and tts["generated_tokens"] == len("It is 4.")


def test_a_search_answers_with_the_vote_and_counts_the_other_candidates_as_reasoning() -> None:
    with serve() as (http, engine):
        engine.texts = ["5", "4", "4"]
        body = {
            "model": MODEL,
            "input": [
                {"role": "user", "content": [{"type": "input_text", "text": "2+2?"}]},
            ],
            "tts": {"strategy": "self_consistency", "n": 3},
        }
        resp = http.post(RESPONSES, json=body)
    assert resp.status_code == 200, resp.text
    response = Response.model_validate(resp.json())
    assert response.output_text == "4"
    assert response.usage is not None
    assert response.usage.output_tokens == 3
    assert response.usage.output_tokens_details.reasoning_tokens == 2
    assert resp.json()["tts"]["votes"] == {"4": 2.0, "5": 1.0}


def test_a_response_cut_at_max_output_tokens_is_incomplete() -> None:
    with serve() as (http, engine):
        engine.texts = ["a long answer"]
        resp = http.post(RESPONSES, json={"model": MODEL, "input": "hi", "max_output_tokens": 3})
    response = Response.model_validate(resp.json())
    assert response.status == "incomplete" and response.output_text == "a l"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"


@pytest.mark.parametrize("tts", [None, {"strategy": "self_consistency", "n": 2}])
def test_streamed_events_are_the_sequence_the_client_parses(tts: dict | None) -> None:
    with serve() as (http, engine):
        engine.texts = (["Four.", "Four!"] if tts else ["Four."]) * 2
        client = openai.OpenAI(base_url="http://testserver/v1", api_key="x", http_client=http)
        extra = {"tts": tts} if tts else None
        streamed = list(
            client.responses.create(model=MODEL, input="2+2?", stream=True, extra_body=extra)
        )
        resp = http.post(
            RESPONSES,
            json={"model": MODEL, "input": "2+2?", "stream": True, **({"tts": tts} if tts else {})},
        )
    assert [type(e).__name__ for e in streamed][:2] == [
        "ResponseCreatedEvent",
        "ResponseInProgressEvent",
    ]
    events = sse(resp.text)
    for parsed in (streamed, [EVENTS.validate_python(e) for e in events]):
        kinds = [e.type for e in parsed]
        assert kinds[:4] == [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
        ]
        assert kinds[-4:] == [
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed",
        ]
        assert set(kinds[4:-4]) == {"response.output_text.delta"}
        assert [e.sequence_number for e in parsed] == list(range(len(parsed)))
        deltas = "".join(e.delta for e in parsed if e.type == "response.output_text.delta")
        done = parsed[-1]
        assert done.type == "response.completed"
        assert done.response.output_text == deltas
        assert deltas in ("Four.", "Four!")
        assert done.response.usage is not None
        assert (done.response.model_extra or {})["tts"]["strategy"] == (tts or {}).get(
            "strategy", "none"
        )
        item_ids = {getattr(e, "item_id", None) for e in parsed} - {None}
        assert item_ids == {done.response.output[0].id}


def test_an_error_mid_stream_is_an_error_event_naming_the_field() -> None:
    with serve() as (http, engine):
        engine.texts = []  # the engine has nothing to say: the strategy fails mid-stream
        resp = http.post(
            RESPONSES,
            json={
                "model": MODEL,
                "input": "2+2?",
                "stream": True,
                "tts": {"strategy": "self_consistency", "n": 2},
            },
        )
    events = sse(resp.text)
    assert [e["type"] for e in events] == ["response.created", "response.in_progress", "error"]
    error = EVENTS.validate_python(events[-1])
    assert error.type == "error" and error.message
    assert "[DONE]" not in resp.text


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"previous_response_id": "resp_1"}, "previous_response_id"),
        ({"store": True}, "store"),
        ({"background": True}, "background"),
        ({"conversation": "conv_1"}, "conversation"),
        ({"tools": [{"type": "function", "name": "f"}]}, "tools"),
        ({"input": [{"type": "function_call_output", "call_id": "c", "output": "x"}]}, "input[0]"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_image"}]}]},
            "input[0].content[0]",
        ),
        ({"input": ""}, "input"),
        ({"top_logprobs": 2}, "top_logprobs"),
        ({"include": ["message.output_text.logprobs"]}, "include"),
        ({"max_output_tokens": 100000}, "max_output_tokens"),
        ({"max_output_tokens": 0}, "max_output_tokens"),
        ({"temperature": 3}, "temperature"),
        ({"text": {"format": {"type": "xml"}}}, "text.format.type"),
        (
            {"text": {"format": {"type": "json_schema", "name": "x", "schema": {"type": 5}}}},
            "text.format.schema",
        ),
        ({"tts": {"strategy": "nope"}}, "tts.strategy"),
        ({"model": "other"}, "model"),
    ],
)
def test_bad_input_is_a_400_naming_the_responses_field(fields: dict, param: str) -> None:
    with serve() as (http, _):
        resp = http.post(RESPONSES, json={"model": MODEL, "input": "hi", **fields})
    assert_error(resp, 404 if param == "model" else 400, param)


def test_an_input_message_error_names_the_input_item_after_instructions() -> None:
    body = {
        "model": MODEL,
        "instructions": "x",
        "input": [{"role": "user", "content": "a"}, {"role": "user", "content": "b" * 5000}],
    }
    with serve(max_model_len=4096) as (http, _):
        resp = http.post(RESPONSES, json=body)
    assert_error(resp, 400, "input")


def test_reasoning_effort_text_format_and_extensions_map_onto_the_chat_request() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    adapted = adapt(
        {
            "model": MODEL,
            "input": "hi",
            "reasoning": {"effort": "high"},
            "text": {"format": {"type": "json_schema", "name": "a", "schema": schema}},
            "top_k": 5,
            "n": 3,
        }
    )
    chat = adapted.chat
    assert chat.reasoning_effort == "high"
    assert chat.response_format == {
        "type": "json_schema",
        "json_schema": {"name": "a", "schema": schema},
    }
    assert chat.structured_output() == StructuredOutput(
        "json_schema", json.dumps(schema, sort_keys=True)
    )
    assert chat.top_k == 5  # a vLLM extension passes through
    assert chat.n == 1  # a chat field that would change the answer's shape does not


def test_text_format_constrains_the_engine_and_the_answer_is_the_json() -> None:
    with serve() as (http, engine):
        engine.texts = ['{"a": 1}']
        resp = http.post(
            RESPONSES,
            json={"model": MODEL, "input": "hi", "text": {"format": {"type": "json_object"}}},
        )
    assert resp.status_code == 200, resp.text
    assert Response.model_validate(resp.json()).output_text == '{"a": 1}'
    assert engine.calls[0].options.structured == StructuredOutput("json_object")


def test_chat_field_names_in_errors_become_the_responses_fields() -> None:
    def param(chat_param: str, **fields: Any) -> str | None:
        body = {"model": MODEL, "input": "hi", **fields}
        adapted = adapt(body)
        return adapted.rename(APIError(400, "bad", param=chat_param)).param

    items = [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]
    assert param("messages[2].content", instructions="x", input=items) == "input[1].content"
    assert param("messages[1].content", input=items) == "input[1].content"
    assert param("messages[0].content", instructions="x", input=items) == "instructions"
    assert param("messages[1]", instructions="x") == "input"
    assert param("max_completion_tokens") == "max_output_tokens"
    assert param("response_format.json_schema.schema") == "text.format.schema"
    assert param("reasoning_effort") == "reasoning.effort"
    assert param("tts.n") == "tts.n"
    error = adapt({"model": MODEL, "input": "hi"}).rename(
        APIError(400, "max_completion_tokens=9 does not fit", param="max_completion_tokens")
    )
    assert error.message == "max_output_tokens=9 does not fit"
