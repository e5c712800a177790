"""`/openapi.json` documents the responses, Ponder's `tts` block included."""

from __future__ import annotations

from typing import Any

from ponder.server.protocol import TTSBlock
from tests.scripted import ScriptedEngine
from tests.server.test_http import CHAT, best_of_n, chat, judge_66, serve
from tests.server.test_progress_http import PROMISED


def resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if ref is None:
        return node
    resolved: dict[str, Any] = schema["components"]["schemas"][ref.rsplit("/", 1)[1]]
    return resolved


def test_the_chat_and_completion_responses_document_the_tts_block() -> None:
    with serve() as (client, _):
        schema = client.get("/openapi.json").json()
    components = schema["components"]["schemas"]
    tts = components["TTSBlock"]
    assert list(tts["properties"])[:10] == [
        "strategy",
        "candidates",
        "generated_tokens",
        "cached_prompt_tokens",
        "engine_calls",
        "verifier_calls",
        "verifier_tokens",
        "verifier_cache_hits",
        "chosen_index",
        "scores",
    ]
    for field in ("difficulty", "budget_exhausted", "trace", "per_prompt"):
        assert field in tts["properties"]
    assert tts["properties"]["trace"]["anyOf"][0]["items"]["$ref"].endswith("/TraceCandidate")
    for path in ("/v1/chat/completions", "/v1/completions"):
        content = schema["paths"][path]["post"]["responses"]["200"]["content"]
        response = resolve(schema, content["application/json"]["schema"])
        assert response["properties"]["tts"]["$ref"].endswith("/TTSBlock")
        assert resolve(schema, response["properties"]["usage"])["title"] == "UsageInfo"


def test_a_response_reads_back_as_the_documented_model() -> None:
    engine = ScriptedEngine(texts=["5", "66", "777"], judge=judge_66)
    with serve(engine) as (client, _):
        data = client.post(CHAT, json=chat(tts=best_of_n(3, return_trace=True))).json()
    tts = TTSBlock.model_validate(data["tts"])
    assert tts.strategy == "best_of_n" and tts.candidates == 3
    assert tts.trace is not None and tts.trace[tts.chosen_index or 0].text == "66"
    assert tts.model_dump(exclude_unset=True) == data["tts"]


def test_the_streamed_progress_chunk_is_documented() -> None:
    with serve() as (client, _):
        schema = client.get("/openapi.json").json()
    chunk = schema["components"]["schemas"]["ProgressChunk"]
    assert list(chunk["properties"]) == [
        "id",
        "object",
        "created",
        "model",
        "choices",
        "tts_progress",
    ]
    progress = resolve(schema, chunk["properties"]["tts_progress"])
    assert list(progress["properties"])[: len(PROMISED)] == PROMISED
    for path in ("/v1/chat/completions", "/v1/completions"):
        content = schema["paths"][path]["post"]["responses"]["200"]["content"]
        assert content["text/event-stream"]["schema"]["$ref"].endswith("/ProgressChunk")


def test_the_responses_route_documents_its_request_and_response() -> None:
    with serve() as (client, _):
        schema = client.get("/openapi.json").json()
    operation = schema["paths"]["/v1/responses"]["post"]
    request = resolve(schema, operation["requestBody"]["content"]["application/json"]["schema"])
    assert {"input", "instructions", "max_output_tokens", "text", "reasoning", "tts"} <= set(
        request["properties"]
    )
    content = operation["responses"]["200"]["content"]
    response = resolve(schema, content["application/json"]["schema"])
    assert response["properties"]["object"]["const"] == "response"
    tts = response["properties"]["tts"]["anyOf"][0]
    assert tts["$ref"].endswith("/TTSBlock")
    assert resolve(schema, response["properties"]["usage"]["anyOf"][0])["title"] == "ResponseUsage"
