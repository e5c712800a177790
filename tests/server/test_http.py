"""The real FastAPI app in process, on the scripted engine: errors, usage, streaming, limits."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from ponder.core.engine import EngineError
from ponder.server.app import create_app
from ponder.server.settings import Settings
from ponder.strategies.registry import STRATEGIES
from ponder.verifiers.loading import load_configured_verifiers
from ponder.verifiers.registry import DEFAULT_VERIFIERS
from tests.scripted import JUDGE_MARKER, ScriptedEngine

MODEL = "scripted-model"
CHAT = "/v1/chat/completions"


def judge_66(answer: str) -> float:
    return 0.9 if answer == "66" else 0.2


@contextmanager
def serve(
    engine: ScriptedEngine | None = None, **settings: Any
) -> Iterator[tuple[TestClient, ScriptedEngine]]:
    engine = engine or ScriptedEngine()
    app = create_app(
        Settings(**settings), engine=engine, verifiers=load_configured_verifiers(engine)
    )
    with TestClient(app) as client:
        yield client, engine


def chat(content: str = "What is 2+2?", **fields: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": content}], **fields}


def best_of_n(n: int = 3, **tts: Any) -> dict[str, Any]:
    return {"strategy": "best_of_n", "n": n, **tts}


def assert_error(resp: Any, status: int, param: str | None = None, code: str | None = None) -> dict:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert list(body) == ["error"]
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["type"], str) and isinstance(error["code"], str)
    assert "Traceback" not in error["message"] and "/work/" not in error["message"]
    assert error["param"] == param
    if code is not None:
        assert error["code"] == code
    return error


def sse_events(text: str) -> list[Any]:
    """The `data:` payloads of an event stream, decoded ("[DONE]" stays a string)."""
    events: list[Any] = []
    for line in text.splitlines():
        if line.startswith("data: "):
            data = line.removeprefix("data: ")
            events.append(data if data == "[DONE]" else json.loads(data))
        else:
            assert line == "" or line.startswith(":"), line
    return events


def metric_samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


# -- errors ------------------------------------------------------------------------------------


def case(
    name: str,
    body: Any,
    param: str | None,
    *,
    status: int = 400,
    code: str | None = None,
    settings: dict[str, Any] | None = None,
    engine: dict[str, Any] | None = None,
) -> Any:
    return pytest.param(settings or {}, engine or {}, body, status, param, code, id=name)


ERROR_CASES = [
    case("array-body", "[1, 2]", None, code="invalid_body"),
    case("not-json", "not json", None, code="invalid_json"),
    case("missing-messages", {"model": MODEL}, "messages", code="missing_required_parameter"),
    case("temperature", chat(temperature=5), "temperature"),
    case("n-zero", chat(n=0), "n"),
    case("n-129", chat(n=129), "n"),
    case("top-logprobs", chat(top_logprobs=2), "top_logprobs"),
    case("stream-options", chat(stream_options={"include_usage": True}), "stream_options"),
    case("stop", chat(stop=list("abcde")), "stop"),
    case("unknown-strategy", chat(tts={"strategy": "nope"}), "tts.strategy"),
    case(
        "unknown-tts-field",
        chat(tts={"strategy": "best_of_n", "bogus": 1}),
        "tts.bogus",
        code="unknown_parameter",
    ),
    case("tts-n-cap", chat(tts=best_of_n(9)), "tts.n", settings={"max_tts_n": 8}),
    case(
        "token-product-cap",
        chat(max_completion_tokens=50, tts=best_of_n(4)),
        "max_completion_tokens",
        settings={"max_request_tokens": 100},
    ),
    case(
        "unknown-model", {**chat(), "model": "other"}, "model", status=404, code="model_not_found"
    ),
    case(
        "suffix-conflict",
        {**chat(tts=best_of_n()), "model": f"{MODEL}@self_consistency"},
        "tts.strategy",
    ),
    case("unknown-suffix", {**chat(), "model": f"{MODEL}@nope"}, "model"),
    case("n-over-candidates", chat(n=3, tts=best_of_n(2)), "n"),
    case("unknown-verifier", chat(tts=best_of_n(verifier="nope")), "tts.verifier"),
    case(
        "unknown-difficulty-bin",
        chat(tts={"strategy": "compute_optimal", "difficulty": "extreme"}),
        "tts.difficulty",
    ),
    case(
        "boolean-difficulty",
        chat(tts={"strategy": "compute_optimal", "difficulty": True}),
        "tts.difficulty",
    ),
    case(
        "compute-optimal-cap",
        chat(tts={"strategy": "compute_optimal"}),
        "tts.n",
        settings={"max_tts_n": 8},
    ),
    case(
        "context-length",
        chat("x" * 100),
        "messages",
        code="context_length_exceeded",
        engine={"max_model_len": 64},
    ),
]


@pytest.mark.parametrize(("settings", "engine_kw", "body", "status", "param", "code"), ERROR_CASES)
def test_bad_request_gets_openai_error_and_changes_nothing(
    settings: dict, engine_kw: dict, body: Any, status: int, param: str | None, code: str | None
) -> None:
    engine = ScriptedEngine(texts=["5", "66", "777"], judge=judge_66, **engine_kw)
    with serve(engine, **settings) as (client, _):
        if isinstance(body, str):
            headers = {"content-type": "application/json"}
            resp = client.post(CHAT, content=body.encode(), headers=headers)
        else:
            resp = client.post(CHAT, json=body)
    error = assert_error(resp, status, param, code)
    assert error["type"] == ("not_found_error" if status == 404 else "invalid_request_error")
    assert engine.calls == []
    assert engine.texts == ["5", "66", "777"]


def test_unknown_strategy_message_lists_known_ones() -> None:
    with serve() as (client, _):
        resp = client.post(CHAT, json=chat(tts={"strategy": "nope"}))
    message = assert_error(resp, 400, "tts.strategy")["message"]
    for name in ("none", "best_of_n", "self_consistency"):
        assert name in message


def test_unknown_top_level_fields_are_accepted() -> None:
    with serve(ScriptedEngine(texts=["ok"])) as (client, _):
        resp = client.post(CHAT, json=chat(foo=1, bar={"x": [1]}))
    assert resp.status_code == 200, resp.text
    assert resp.json()["choices"][0]["message"]["content"] == "ok"


# -- strategies over HTTP ----------------------------------------------------------------------


def test_best_of_n_usage_and_batching() -> None:
    engine = ScriptedEngine(texts=["5", "66", "777"], judge=judge_66)
    with serve(engine) as (client, _):
        resp = client.post(CHAT, json=chat(tts=best_of_n(3)))
    assert resp.status_code == 200, resp.text
    body = resp.json()
    completion = ChatCompletion.model_validate(body)
    assert completion.model == MODEL
    assert [c.message.content for c in completion.choices] == ["66"]
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 1 + 2 + 3
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + 6
    assert body["usage"]["completion_tokens_details"]["reasoning_tokens"] == 6 - 2
    tts = body["tts"]
    assert tts["strategy"] == "best_of_n"
    assert tts["verifier"] == "self_judge"
    assert tts["verifier_calls"] == 3
    assert tts["chosen_index"] == 1
    assert tts["candidates"] == 3
    assert tts["scores"] == pytest.approx([0.2, 0.9, 0.2])

    assert len(engine.calls) == 2
    sampling, judging = engine.calls
    assert sampling.n == 3 and len(sampling.prompts) == 1
    assert not any(JUDGE_MARKER in p for p in sampling.prompt_texts())
    assert judging.n == 1 and len(judging.prompts) == 3
    assert all(JUDGE_MARKER in p for p in judging.prompt_texts())


def test_self_consistency_from_model_suffix() -> None:
    engine = ScriptedEngine(texts=["4", "5", "4", "5", "4"])
    body = {**chat(tts={"n": 5}), "model": f"{MODEL}@self_consistency"}
    with serve(engine) as (client, _):
        resp = client.post(CHAT, json=body)
    assert resp.status_code == 200, resp.text
    data = resp.json()
    ChatCompletion.model_validate(data)
    assert data["model"] == f"{MODEL}@self_consistency"
    assert data["choices"][0]["message"]["content"] == "4"
    assert data["tts"]["strategy"] == "self_consistency"
    assert data["tts"]["votes"] == {"4": 3.0, "5": 2.0}
    assert data["usage"]["completion_tokens"] == 5
    assert [c.n for c in engine.calls] == [5]


# -- streaming ---------------------------------------------------------------------------------


def test_stream_plain_decoding_with_usage() -> None:
    texts = ["abc", "de"]
    engine = ScriptedEngine(texts=list(texts))
    request = chat(n=2, stream=True, stream_options={"include_usage": True})
    with serve(engine) as (client, _):
        resp = client.post(CHAT, json=request)
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/event-stream")
    events = sse_events(resp.text)
    assert events[-1] == "[DONE]" and "[DONE]" not in events[:-1]
    chunks = [ChatCompletionChunk.model_validate(e) for e in events[:-1]]
    with_usage = [i for i, e in enumerate(events[:-1]) if e.get("usage") is not None]
    assert with_usage == [len(chunks) - 1]
    last = chunks[-1]
    assert last.choices == []
    content: dict[int, str] = {}
    finish: dict[int, str | None] = {}
    for c in chunks[:-1]:
        assert len(c.choices) == 1 and c.usage is None
        choice = c.choices[0]
        content[choice.index] = content.get(choice.index, "") + (choice.delta.content or "")
        finish[choice.index] = choice.finish_reason
    assert content == {0: "abc", 1: "de"}
    assert finish == {0: "stop", 1: "stop"}
    assert last.usage is not None
    assert last.usage.completion_tokens == sum(map(len, texts))
    assert last.usage.prompt_tokens == len(engine.calls[0].prompts[0])


def test_stream_search_sends_chosen_answer() -> None:
    engine = ScriptedEngine(texts=["5", "66", "777"], judge=judge_66)
    with serve(engine) as (client, _):
        resp = client.post(CHAT, json=chat(stream=True, tts=best_of_n(3)))
    assert resp.status_code == 200
    events = sse_events(resp.text)
    assert events[-1] == "[DONE]"
    every = [ChatCompletionChunk.model_validate(e) for e in events[:-1]]
    # Progress chunks (no choices) come first, then the answer.
    progress = [c for c in every if not c.choices]
    chunks = [c for c in every if c.choices]
    assert progress and every[: len(progress)] == progress
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "66"
    assert {c.choices[0].index for c in chunks} == {0}
    assert chunks[-1].choices[0].finish_reason == "stop"


class FailingEngine(ScriptedEngine):
    """An engine that dies once the request is running, as vLLM's core can."""

    async def generate(self, *args: Any, **kwargs: Any) -> Any:
        raise EngineError("engine core died at /work/secret/path")


def test_stream_error_arrives_as_error_chunk_then_done() -> None:
    engine = FailingEngine(texts=["5"], judge=judge_66)
    with serve(engine) as (client, _):
        resp = client.post(CHAT, json=chat(stream=True, tts=best_of_n(3)))
    assert resp.status_code == 200
    events = sse_events(resp.text)
    assert events[-1] == "[DONE]"
    assert len(events) == 2
    error = events[0]["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "service_unavailable_error" and error["code"] == "engine_unavailable"
    assert "Traceback" not in error["message"] and "/work/" not in error["message"]


def test_unknown_verifier_in_a_stream_is_a_400_before_streaming() -> None:
    engine = ScriptedEngine(texts=["5"], judge=judge_66)
    with serve(engine) as (client, _):
        resp = client.post(CHAT, json=chat(stream=True, tts=best_of_n(3, verifier="nope")))
    assert_error(resp, 400, "tts.verifier")
    assert engine.calls == []


# -- admission ---------------------------------------------------------------------------------


def test_full_server_answers_429_with_retry_after() -> None:
    engine = ScriptedEngine(texts=["slow"], delay=1.0)
    first: dict[str, Any] = {}
    with serve(engine, max_concurrent_requests=1, max_queued_requests=0) as (client, _):
        worker = threading.Thread(target=lambda: first.update(resp=client.post(CHAT, json=chat())))
        worker.start()
        try:
            deadline = time.monotonic() + 10
            while "ponder_requests_running 1.0" not in client.get("/metrics").text:
                assert time.monotonic() < deadline, "the first request never started running"
                time.sleep(0.01)
            resp = client.post(CHAT, json=chat())
        finally:
            worker.join()
        metrics = metric_samples(client.get("/metrics").text)
    error = assert_error(resp, 429, None, "server_busy")
    assert error["type"] == "rate_limit_error"
    assert resp.headers["Retry-After"] == "1"
    assert first["resp"].status_code == 200
    assert first["resp"].json()["choices"][0]["message"]["content"] == "slow"
    assert len(engine.calls) == 1
    refused = (("status", "busy"), ("strategy", "none"))
    assert metrics[("ponder_requests_total", refused)] == 1.0


# -- discovery, metrics, health, auth ----------------------------------------------------------


def test_strategies_lists_strategies_and_verifiers() -> None:
    with serve() as (client, _):
        resp = client.get("/v1/strategies")
    assert resp.status_code == 200
    body = resp.json()
    listed = {s["name"]: s for s in body["data"]}
    # Every registered strategy is listed.
    assert set(listed) == set(STRATEGIES)
    assert {"none", "best_of_n", "self_consistency", "beam_search"} <= set(listed)
    for entry in listed.values():
        assert isinstance(entry["description"], str) and entry["description"]
        assert entry["parameters"]["type"] == "object"
    assert "n" in listed["best_of_n"]["parameters"]["properties"]
    assert "n" in listed["self_consistency"]["parameters"]["properties"]
    verifiers = {v["name"]: v for v in body["verifiers"]}
    # Every verifier that needs no model of its own is loaded by default.
    assert set(verifiers) == set(DEFAULT_VERIFIERS)
    assert {"confidence", "self_judge", "step_judge"} <= set(verifiers)
    assert verifiers["step_judge"]["kind"] == "generative"
    confidence, judge = verifiers["confidence"], verifiers["self_judge"]
    assert (confidence["kind"], confidence["family"], confidence["model"]) == (
        "programmatic",
        "confidence",
        None,
    )
    assert (judge["kind"], judge["family"], judge["model"]) == ("generative", "yes_no_judge", MODEL)


def test_metrics_count_requests_tokens_and_verifier_calls() -> None:
    engine = ScriptedEngine(texts=["5", "66", "777"], judge=judge_66)
    with serve(engine) as (client, _):
        before = metric_samples(client.get("/metrics").text)
        data = client.post(CHAT, json=chat(tts=best_of_n(3))).json()
        after = metric_samples(client.get("/metrics").text)
    ok = ("ponder_requests_total", (("status", "ok"), ("strategy", "best_of_n")))
    policy = ("ponder_policy_tokens_total", (("strategy", "best_of_n"),))
    verifier = ("ponder_verifier_calls_total", (("verifier", "self_judge"),))
    assert ok not in before
    assert after[ok] == 1.0
    assert after[policy] == data["usage"]["completion_tokens"] == 6
    assert after[verifier] == data["tts"]["verifier_calls"] == 3
    assert after[("ponder_candidates_total", (("strategy", "best_of_n"),))] == 3
    assert after[("ponder_requests_running", ())] == 0.0
    # Six tokens were generated ("5", "66", "777") and the two of "66" returned.
    reasoning = ("ponder_reasoning_tokens_total", (("strategy", "best_of_n"),))
    assert after[reasoning] == data["usage"]["completion_tokens_details"]["reasoning_tokens"]
    assert after[reasoning] == 4


def test_compute_optimal_reports_difficulty_in_tts_and_metrics(tmp_path: Any) -> None:
    path = tmp_path / "policy.json"
    path.write_text(
        json.dumps(
            {
                "name": "two-bins",
                "probe": {"n": 3},
                "bins": [
                    {
                        "name": "easy",
                        "max_difficulty": 0.4,
                        "options": [{"tts": {"strategy": "none"}}],
                    },
                    {
                        "name": "hard",
                        "max_difficulty": 1.0,
                        "options": [{"tts": {"strategy": "self_consistency", "n": 5}}],
                    },
                ],
            }
        )
    )
    engine = ScriptedEngine(texts=["5", "6", "7", "8", "8"])
    with serve(engine, policy_table=path) as (client, _):
        data = client.post(CHAT, json=chat(tts={"strategy": "compute_optimal"})).json()
        after = metric_samples(client.get("/metrics").text)
    tts = data["tts"]
    assert tts["strategy"] == "compute_optimal"
    assert tts["difficulty"] == {"estimate": pytest.approx(2 / 3), "bin": "hard", "source": "probe"}
    assert tts["chosen_strategy"] == "self_consistency"
    assert tts["policy"] == {"name": "two-bins", "version": 1}
    assert data["choices"][0]["message"]["content"] == "8"
    # The probe's 3 samples are 3 of the 5 votes: 5 tokens in all, not 8.
    assert data["usage"]["completion_tokens"] == 5
    key = (
        "ponder_difficulty_bin_total",
        (("bin", "hard"), ("chosen_strategy", "self_consistency")),
    )
    assert after[key] == 1.0


def test_a_broken_policy_table_stops_start_up(tmp_path: Any) -> None:
    path = tmp_path / "policy.json"
    path.write_text('{"bins": []}')
    with pytest.raises(Exception, match="at least 1 item"), serve(policy_table=path):
        pass


def test_health_ready_and_models() -> None:
    with serve() as (client, _):
        health, ready, models = (
            client.get("/health"),
            client.get("/ready"),
            client.get("/v1/models"),
        )
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    assert (ready.status_code, ready.json()) == (200, {"status": "ready"})
    assert models.status_code == 200
    assert [m["id"] for m in models.json()["data"]] == [MODEL]


def test_api_key_is_required_on_v1_only() -> None:
    engine = ScriptedEngine(texts=["ok"])
    with serve(engine, api_key="k") as (client, _):
        missing = client.post(CHAT, json=chat())
        wrong = client.post(CHAT, json=chat(), headers={"Authorization": "Bearer nope"})
        models = client.get("/v1/models")
        assert engine.calls == []
        good = client.post(CHAT, json=chat(), headers={"Authorization": "Bearer k"})
        health = client.get("/health")
    for resp in (missing, wrong, models):
        error = assert_error(resp, 401, None, "invalid_api_key")
        assert error["type"] == "authentication_error"
    assert good.status_code == 200
    assert good.json()["choices"][0]["message"]["content"] == "ok"
    assert health.status_code == 200


# -- legacy completions ------------------------------------------------------------------------


def test_completions_reject_token_ids_outside_the_vocabulary() -> None:
    engine = ScriptedEngine(texts=["x"], vocab_size=1000)
    with serve(engine) as (client, _):
        resp = client.post(
            "/v1/completions", json={"model": MODEL, "prompt": [5, 1000], "max_tokens": 4}
        )
        assert_error(resp, 400, "prompt")
        assert engine.calls == []
        ok = client.post("/v1/completions", json={"model": MODEL, "prompt": [5, 999]})
    assert ok.status_code == 200
    assert ok.json()["choices"][0]["text"] == "x"
    # OpenAI's default completion length is 16 tokens.
    assert engine.calls[0].options.max_tokens == 16
