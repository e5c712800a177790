"""The API of a reasoning model: vLLM's own `qwen3` parser in process, on the scripted engine.

`message.reasoning` and `delta.reasoning` (vLLM's names), the Responses API's reasoning item,
`reasoning_tokens` as every generated token not returned as content, thinking budgets, and
`reasoning_effort` presets.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.responses import ResponseReasoningItem

from ponder.strategies.effort import default_presets
from tests.scripted import ScriptedEngine
from tests.server.test_http import CHAT, MODEL, assert_error, chat, serve, sse_events
from tests.server.test_responses_api import EVENTS
from tests.server.test_responses_api import sse as responses_sse
from tests.thinking import ThinkingEngine

PARSER = {"reasoning_parser": "qwen3"}


def test_the_chosen_candidates_thinking_is_message_reasoning_and_counted_as_reasoning() -> None:
    texts = ["abc</think>5", "de</think>5", "f</think>6"]
    engine = ThinkingEngine(texts=list(texts))
    tts = {"strategy": "self_consistency", "n": 3}
    with serve(engine, **PARSER) as (client, _):
        resp = client.post(CHAT, json=chat(tts=tts))
    assert resp.status_code == 200, resp.text
    body = resp.json()
    ChatCompletion.model_validate(body)
    message = body["choices"][0]["message"]
    assert (message["content"], message["reasoning"]) == ("5", "abc")
    usage = body["usage"]
    assert usage["completion_tokens"] == sum(map(len, texts))
    # Everything but the chosen answer's one content token: its thinking and two other samples.
    assert usage["completion_tokens_details"]["reasoning_tokens"] == sum(map(len, texts)) - 1
    assert body["tts"]["votes"] == {"5": 2.0, "6": 1.0}


def test_include_reasoning_false_leaves_the_thinking_out() -> None:
    with serve(ThinkingEngine(texts=["abc</think>5"]), **PARSER) as (client, _):
        body = client.post(CHAT, json=chat(include_reasoning=False)).json()
    assert body["choices"][0]["message"] == {"content": "5", "refusal": None, "role": "assistant"}


def test_without_a_parser_the_text_is_returned_whole_with_no_reasoning_field() -> None:
    with serve(ScriptedEngine(texts=["abc</think>5"])) as (client, _):
        body = client.post(CHAT, json=chat()).json()
    assert body["choices"][0]["message"]["content"] == "abc</think>5"
    assert "reasoning" not in body["choices"][0]["message"]


def _stream(engine: ScriptedEngine, **fields: Any) -> tuple[str, str, dict[str, Any]]:
    with serve(engine, **PARSER) as (client, _):
        resp = client.post(CHAT, json=chat(stream=True, **fields))
    events = sse_events(resp.text)
    assert events[-1] == "[DONE]"
    chunks = [ChatCompletionChunk.model_validate(e) for e in events[:-1]]
    deltas = [e["choices"][0]["delta"] for e in events[:-1] if e["choices"]]
    assert len(chunks) == len(events) - 1
    reasoning = "".join(d.get("reasoning") or "" for d in deltas)
    content = "".join(d.get("content") or "" for d in deltas)
    return reasoning, content, events[-2]


@pytest.mark.parametrize(
    "fields",
    [{}, {"tts": {"strategy": "self_consistency", "n": 1}}, {"thinking_token_budget": 100}],
    ids=["live", "search", "budget"],
)
def test_streams_send_the_thinking_as_delta_reasoning(fields: dict[str, Any]) -> None:
    # With a thinking budget the first call stops at the end of thinking, a second answers.
    engine = ThinkingEngine(texts=["<think>hmm</think>42", "42"])
    reasoning, content, _ = _stream(engine, stream_options={"include_usage": True}, **fields)
    assert (reasoning, content) == ("hmm", "42")


def test_thinking_token_budget_forces_the_end_of_thinking_and_reports_it() -> None:
    engine = ThinkingEngine(texts=["abcdefgh", "9"])
    with serve(engine, **PARSER) as (client, _):
        body = client.post(CHAT, json=chat(thinking_token_budget=5)).json()
    message = body["choices"][0]["message"]
    assert (message["reasoning"], message["content"]) == ("abcde", "9")
    assert engine.calls[1].prompt_texts()[0].endswith("abcde</think>")
    assert body["usage"]["completion_tokens"] == 5 + 1
    assert body["usage"]["completion_tokens_details"]["reasoning_tokens"] == 5
    assert body["tts"]["thinking"]["forced_ends"] == 1


def test_thinking_fields_need_a_reasoning_parser() -> None:
    with serve(ScriptedEngine(texts=["1"])) as (client, _):
        budget = client.post(CHAT, json=chat(thinking_token_budget=5))
        tts_min = client.post(CHAT, json=chat(tts={"min_thinking_tokens": 5}))
        both = client.post(CHAT, json=chat(thinking_token_budget=5, tts={"thinking_budget": 6}))
        effort = client.post(CHAT, json=chat(reasoning_effort="huge"))
    assert_error(budget, 400, "thinking_token_budget")
    assert_error(tts_min, 400, "tts.min_thinking_tokens")
    assert_error(both, 400, "thinking_token_budget")
    assert_error(effort, 400, "reasoning_effort")


def test_reasoning_effort_selects_its_preset_and_reports_it() -> None:
    presets = default_presets()
    high = presets.presets["high"]
    n = high.tts["n"]
    engine = ScriptedEngine(texts=["4"] * n)
    with serve(engine) as (client, _):
        body = client.post(CHAT, json=chat(reasoning_effort="high")).json()
    assert body["tts"]["strategy"] == high.tts["strategy"]
    assert body["tts"]["effort"] == {
        "reasoning_effort": "high",
        "presets": presets.name,
        "version": 1,
        "applied": True,
    }
    assert engine.calls[0].n == n
    assert engine.calls[0].options.temperature == high.temperature


def test_an_explicit_tts_strategy_wins_over_the_preset() -> None:
    engine = ScriptedEngine(texts=["4"])
    with serve(engine) as (client, _):
        body = client.post(
            CHAT, json=chat(reasoning_effort="xhigh", temperature=0.3, tts={"strategy": "none"})
        ).json()
    assert body["tts"]["strategy"] == "none" and body["tts"]["effort"]["applied"] is False
    assert len(engine.calls) == 1 and engine.calls[0].options.temperature == 0.3


def test_an_operators_presets_file_replaces_the_shipped_one(tmp_path: Path) -> None:
    data = json.loads(json.dumps(default_presets().model_dump()))
    data["name"] = "ops"
    data["presets"]["low"] = {"tts": {"strategy": "self_consistency", "n": 2}, "temperature": 0.9}
    path = tmp_path / "effort.json"
    path.write_text(json.dumps(data))
    engine = ScriptedEngine(texts=["4", "4"])
    with serve(engine, effort_presets=path) as (client, _):
        body = client.post(CHAT, json=chat(reasoning_effort="low", tts={"return_trace": True}))
    tts = body.json()["tts"]
    assert tts["effort"]["presets"] == "ops" and tts["candidates"] == 2
    assert engine.calls[0].options.temperature == 0.9


def test_a_presets_file_without_every_level_stops_the_server(tmp_path: Path) -> None:
    path = tmp_path / "effort.json"
    path.write_text(json.dumps({"name": "x", "presets": {"low": {"tts": {}}}}))
    with (
        pytest.raises(ValueError, match="no preset for reasoning_effort none"),
        serve(effort_presets=path),
    ):
        pass


def test_responses_return_the_thinking_as_a_reasoning_item_before_the_message() -> None:
    with serve(ThinkingEngine(texts=["abc</think>5"]), **PARSER) as (http, _):
        client = openai.OpenAI(base_url="http://testserver/v1", api_key="x", http_client=http)
        response = client.responses.create(model=MODEL, input="What is 2+3?")
    thinking, message = response.output
    assert isinstance(thinking, ResponseReasoningItem) and thinking.id.startswith("rs_")
    assert [c.text for c in thinking.content or []] == ["abc"]
    assert thinking.status == "completed" and thinking.summary == []
    assert response.output_text == "5"
    assert message.type == "message"
    usage = response.usage
    assert usage is not None and usage.output_tokens == len("abc</think>5")
    # Every token but the answer's one: the thinking and its end marker.
    assert usage.output_tokens_details.reasoning_tokens == usage.output_tokens - 1


@pytest.mark.parametrize(
    "tts", [None, {"strategy": "self_consistency", "n": 1}], ids=["live", "search"]
)
def test_streamed_responses_send_the_reasoning_item_then_the_message(tts: Any) -> None:
    engine = ThinkingEngine(texts=["<think>hmm</think>42"])
    body = {"model": MODEL, "input": "What is 6*7?", "stream": True}
    with serve(engine, **PARSER) as (client, _):
        resp = client.post("/v1/responses", json={**body, **({"tts": tts} if tts else {})})
    events = [EVENTS.validate_python(e) for e in responses_sse(resp.text)]
    kinds = [e.type for e in events]
    first_answer = kinds.index("response.output_text.delta")
    assert kinds.index("response.reasoning_text.done") < first_answer
    thinking = "".join(e.delta for e in events if e.type == "response.reasoning_text.delta")
    answer = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert (thinking, answer) == ("hmm", "42")
    added = [e.item for e in events if e.type == "response.output_item.added"]
    assert [(i.type, e) for e, i in enumerate(added)] == [("reasoning", 0), ("message", 1)]
    final = events[-1]
    assert final.type == "response.completed"
    assert [i.id for i in final.response.output] == [i.id for i in added]
    assert final.response.output_text == "42"
