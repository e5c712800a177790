"""`response_format` and `logit_bias` on chat: what reaches the engine (both engines' shapes), the
vote by JSON value, and the 400s that name the field."""

from __future__ import annotations

import json
import warnings
from typing import Any

import pytest

from ponder.core.answers import canonical_json, extract_answer, tally
from ponder.core.engine import SamplingOptions, StructuredOutput
from ponder.server.engine_common import sampling_fields
from ponder.server.remote_convert import completion_body
from tests.server.test_http import CHAT, MODEL, assert_error, chat, serve

SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
    "additionalProperties": False,
}


SCHEMA_PARAM = "response_format.json_schema.schema"


def json_schema(schema: Any = SCHEMA, **extra: Any) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": "person", "schema": schema, **extra}}


def test_json_documents_are_answers_by_value() -> None:
    assert canonical_json(' {"b": 2.0, "a": [1, {"y": 1, "x": 0}]}\n') == (
        '{"a":[1,{"x":0,"y":1}],"b":2}'
    )
    assert canonical_json("42") is None and canonical_json('"text"') is None
    assert canonical_json('{"a": ') is None and canonical_json("[" * 100_000) is None
    assert extract_answer('{"answer": 7, "why": "3 + 4"}') == '{"answer":7,"why":"3 + 4"}'
    votes = tally(
        [
            extract_answer(t)
            for t in ('{"a": 1, "b": "X"}', '{"a": 2, "b": "X"}', '{ "b": "X",\n "a": 1.0 }')
        ]
    )
    assert votes.groups == (0, 1, 0)
    # Values are compared exactly: case and spacing inside strings matter.
    assert tally(['{"b": "X"}', '{"b": "x"}', '{"b": " X"}']).groups == (0, 1, 2)


def test_self_consistency_votes_json_answers_by_value_and_constrains_every_candidate() -> None:
    with serve() as (client, engine):
        engine.texts = [
            '{"name": "Ann", "age": 30}',
            '{"name": "Bob", "age": 41}',
            '{"age": 30,\n "name": "Ann"}',
            '{"name": "Bob", "age": 41.0}',
            '{"age": 30.0, "name": "Ann"}',
        ]
        resp = client.post(
            CHAT,
            json=chat(
                response_format=json_schema(strict=True),
                tts={"strategy": "self_consistency", "n": 5, "return_trace": True},
            ),
        )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert json.loads(body["choices"][0]["message"]["content"]) == {"name": "Ann", "age": 30}
    assert body["tts"]["votes"] == {'{"age":30,"name":"Ann"}': 3.0, '{"age":41,"name":"Bob"}': 2.0}
    assert [c["answer"] for c in body["tts"]["trace"]][:2] == [
        '{"age":30,"name":"Ann"}',
        '{"age":41,"name":"Bob"}',
    ]
    expected = StructuredOutput("json_schema", json.dumps(SCHEMA, sort_keys=True))
    assert [call.options.structured for call in engine.calls] == [expected] * len(engine.calls)


def test_json_object_and_logit_bias_reach_the_engine() -> None:
    with serve() as (client, engine):
        engine.texts = ["{}"]
        resp = client.post(
            CHAT,
            json=chat(response_format={"type": "json_object"}, logit_bias={"65": -100, "7": 2.5}),
        )
    assert resp.status_code == 200, resp.text
    options = engine.calls[0].options
    assert options.structured == StructuredOutput("json_object")
    assert options.logit_bias == ((7, 2.5), (65, -100.0))


def test_text_response_format_is_plain_text() -> None:
    with serve() as (client, engine):
        engine.texts = ["hi"]
        resp = client.post(CHAT, json=chat(response_format={"type": "text"}))
    assert resp.status_code == 200
    assert engine.calls[0].options.structured is None


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"response_format": {"type": "xml"}}, "response_format.type"),
        ({"response_format": {"type": "json_schema"}}, "response_format.json_schema"),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"schema": SCHEMA}}},
            "response_format.json_schema.name",
        ),
        (
            {"response_format": json_schema({"type": "nonsense"})},
            "response_format.json_schema.schema",
        ),
        (
            {"response_format": json_schema(["not", "an", "object"])},
            "response_format.json_schema.schema",
        ),
        (
            {"response_format": json_schema(), "tts": {"strategy": "beam_search", "beam_width": 2}},
            "response_format",
        ),
        ({"logit_bias": {"the": 1}}, "logit_bias"),
        ({"logit_bias": {"-5": 1}}, "logit_bias"),
        ({"logit_bias": {"5": 101}}, "logit_bias"),
        ({"logit_bias": {str(0x110000): 1}}, "logit_bias"),
        ({"logit_bias": {str(i): 1 for i in range(1025)}}, "logit_bias"),
    ],
)
def test_bad_formats_and_biases_are_400s_naming_the_field(fields: dict, param: str) -> None:
    with serve() as (client, engine):
        resp = client.post(CHAT, json=chat(**fields))
    assert_error(resp, 400, param)
    assert engine.calls == []


def test_both_engines_send_vllms_structured_outputs_and_logit_bias() -> None:
    options = SamplingOptions(
        max_tokens=8,
        logit_bias=((3, -100.0),),
        structured=StructuredOutput("json_schema", json.dumps(SCHEMA)),
    )
    fields = sampling_fields(options, 1, seeded=True)
    assert fields["structured_outputs"] == {"json": SCHEMA}
    assert fields["logit_bias"] == {3: -100.0}
    body = completion_body("m", [1], options, n=1, request_id="r", stream=False)
    # What vLLM's /v1/completions reads, once sent as JSON (token ids become string keys).
    sent = json.loads(json.dumps(body))
    assert sent["structured_outputs"] == {"json": SCHEMA}
    assert sent["logit_bias"] == {"3": -100.0}
    plain = completion_body(
        "m", [1], SamplingOptions(max_tokens=8), n=1, request_id="r", stream=False
    )
    assert "structured_outputs" not in plain and "logit_bias" not in plain
    json_object = sampling_fields(
        SamplingOptions(max_tokens=8, structured=StructuredOutput("json_object")), 1, seeded=True
    )
    assert json_object["structured_outputs"] == {"json_object": True}


def test_vllm_sampling_params_carry_the_constraint() -> None:
    with warnings.catch_warnings():
        # Importing vLLM imports torch, whose import-time deprecation notices are not ours.
        warnings.simplefilter("ignore", DeprecationWarning)
        from vllm.sampling_params import RequestOutputKind, StructuredOutputsParams

        from ponder.server.vllm_convert import sampling_params

    options = SamplingOptions(
        max_tokens=8,
        logit_bias=((3, -100.0),),
        structured=StructuredOutput("json_schema", json.dumps(SCHEMA)),
    )
    params = sampling_params(options, 2, RequestOutputKind.FINAL_ONLY, seeded=True)
    assert isinstance(params.structured_outputs, StructuredOutputsParams)
    assert params.structured_outputs.json == SCHEMA
    assert params.logit_bias == {3: -100.0}


def test_legacy_completions_take_a_response_format_too() -> None:
    with serve() as (client, engine):
        engine.texts = ['{"a": 1}']
        resp = client.post(
            "/v1/completions",
            json={"model": MODEL, "prompt": "JSON:", "response_format": {"type": "json_object"}},
        )
        refused = client.post(
            "/v1/completions",
            json={"model": MODEL, "prompt": "JSON:", "response_format": json_schema({"type": 1})},
        )
    assert resp.status_code == 200, resp.text
    assert engine.calls[0].options.structured == StructuredOutput("json_object")
    assert_error(refused, 400, SCHEMA_PARAM)


def test_vllms_refusal_of_a_schema_names_response_format() -> None:
    from ponder.server.remote_convert import input_error

    body = {"error": {"message": "Failed to transform json schema into a grammar: no #/nope"}}
    assert input_error(400, json.dumps(body)).param == "response_format"
    assert input_error(400, json.dumps({"error": {"message": "bad prompt"}})).param is None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from vllm.exceptions import VLLMValidationError

        from ponder.server.vllm_convert import engine_input_error

    refusal = VLLMValidationError("The provided JSON schema contains features not supported")
    assert engine_input_error(refusal, "refused").param == "response_format"
