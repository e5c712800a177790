"""Property-based tests over the whole request surface, on the in-process app and scripted engine.

Whatever a client sends, the answer is a 2xx or an OpenAI-shaped 4xx whose message leaks no path,
traceback or internal name, and the server still answers a plain request afterwards. Bodies come
from two sources: hypothesis mutations of valid requests (any JSON value in any field, hostile
text included) and schemathesis, which generates them from the app's own OpenAPI schema. Both are
seeded (derandomized) and bounded in count, so they run in the normal test run.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any, cast

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from ponder.server.app import create_app
from ponder.server.settings import Settings
from ponder.strategies.registry import STRATEGIES
from ponder.verifiers.loading import load_configured_verifiers
from tests.scripted import ScriptedEngine
from tests.server.test_http import CHAT, MODEL, chat, sse_events

COMPLETIONS = "/v1/completions"
RESPONSES = "/v1/responses"

# What a message must never show: a path, a traceback, a Python class or exception name.
_LEAKS = re.compile(
    r"Traceback|File \"|\.py\b|site-packages|/work/|/usr/|<class |object at 0x|"
    r"\b\w+(Error|Exception)\b|pydantic|ponder\.",
)


def _answer(prompt: str, n: int) -> list[str]:
    return ["The answer is 5.\n\nSo 5."] * n


def _engine() -> ScriptedEngine:
    return ScriptedEngine(
        responder=_answer,
        judge=lambda _: 0.5,
        next_tokens=lambda ids: [(ord("5"), -0.1), (0, -0.7)],
        max_model_len=512,
    )


def _app() -> Any:
    engine = _engine()
    # Small caps so that generated requests stay cheap; the limits themselves are under test too.
    config = Settings(max_tts_n=8, max_request_tokens=4096, max_body_bytes=64 * 1024)
    return create_app(config, engine=engine, verifiers=load_configured_verifiers(engine))


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(_app()) as test_client:
        yield test_client


def assert_well_behaved(resp: Any) -> None:
    """A 2xx with a usable body, or an OpenAI-shaped 4xx that leaks nothing."""
    assert resp.status_code < 500, resp.text
    if resp.status_code >= 400:
        body = resp.json()
        assert list(body) == ["error"], body
        error = body["error"]
        assert set(error) == {"message", "type", "param", "code"}
        assert isinstance(error["message"], str) and error["message"]
        assert isinstance(error["code"], str)
        assert error["param"] is None or isinstance(error["param"], str)
        assert not _LEAKS.search(error["message"]), error["message"]
        return
    if resp.headers["content-type"].startswith("text/event-stream") and _is_responses(resp):
        # Responses events: named, numbered, ending in the finished response or an error event.
        payloads = [
            json.loads(line.removeprefix("data: "))
            for line in resp.text.splitlines()
            if line.startswith("data: ")
        ]
        assert [p["sequence_number"] for p in payloads] == list(range(len(payloads)))
        assert payloads[-1]["type"] in {"response.completed", "response.incomplete", "error"}
        if payloads[-1]["type"] == "error":
            assert not _LEAKS.search(payloads[-1]["message"]), payloads[-1]
    elif resp.headers["content-type"].startswith("text/event-stream"):
        events = sse_events(resp.text)
        assert events[-1] == "[DONE]"
        for event in events[:-1]:
            if "error" in event:
                assert not _LEAKS.search(event["error"]["message"]), event
    elif resp.headers["content-type"].startswith("application/json"):
        body = resp.json()
        assert isinstance(body, dict)
        if "choices" in body:
            assert body["object"] in {"chat.completion", "text_completion"}
            assert body["usage"]["completion_tokens"] >= 0


def _is_responses(resp: Any) -> bool:
    return bool(resp.request.url.path == RESPONSES)


def assert_still_serving(client: TestClient) -> None:
    resp = client.post(CHAT, json=chat(max_completion_tokens=8))
    assert resp.status_code == 200, resp.text
    assert client.get("/metrics").text.count("ponder_requests_running 0.0") == 1


# -- hypothesis: valid requests with fields replaced by anything ------------------------------

# Any text, lone surrogates included (json.dumps writes them as \ud800 escapes).
_text = st.text(st.characters(exclude_categories=()), max_size=40)
_leaf = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _text
_json = st.recursive(
    _leaf,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_text, children, max_size=4),
    max_leaves=12,
)
_fields = st.sampled_from(
    [
        "model",
        "messages",
        "prompt",
        "n",
        "temperature",
        "top_p",
        "max_tokens",
        "max_completion_tokens",
        "stop",
        "stream",
        "stream_options",
        "seed",
        "logprobs",
        "top_logprobs",
        "tts",
        "min_tokens",
        "top_k",
        "logit_bias",
        "response_format",
        "input",
        "instructions",
        "max_output_tokens",
        "text",
        "reasoning",
        "store",
        "previous_response_id",
    ]
)
_tts = st.fixed_dictionaries(
    {"strategy": st.sampled_from(sorted(STRATEGIES))},
    optional={
        "n": st.integers(-2, 10),
        "verifier": st.sampled_from(["self_judge", "confidence", "nope", ""]),
        "budget": st.fixed_dictionaries(
            {}, optional={"max_tokens": st.integers(-1, 64), "deadline_s": st.floats(-1, 5)}
        ),
        "return_trace": st.booleans(),
        "step_delimiter": _text,
    },
)


@st.composite
def _bodies(draw: st.DrawFn) -> tuple[str, Any]:
    endpoint = draw(st.sampled_from([CHAT, COMPLETIONS, RESPONSES]))
    if endpoint == CHAT:
        content = draw(_text)
        body: dict[str, Any] = chat(content, max_completion_tokens=draw(st.integers(1, 16)))
    elif endpoint == RESPONSES:
        body = {"model": MODEL, "input": draw(_text), "max_output_tokens": draw(st.integers(1, 16))}
    else:
        body = {"model": MODEL, "prompt": draw(_text), "max_tokens": draw(st.integers(1, 16))}
    body["temperature"] = draw(st.sampled_from([0, 0.7, 1.0]))
    body["stream"] = draw(st.booleans())
    body["tts"] = draw(_tts)
    for field in draw(st.lists(_fields, max_size=3, unique=True)):
        body[field] = draw(_json)
    if draw(st.booleans()):
        return endpoint, draw(_json)  # not a request at all
    return endpoint, body


@settings(
    max_examples=150,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(request=_bodies())
def test_any_body_gets_a_2xx_or_an_openai_4xx(client: TestClient, request: tuple[str, Any]) -> None:
    endpoint, body = request
    raw = json.dumps(body).encode()
    resp = client.post(endpoint, content=raw, headers={"content-type": "application/json"})
    assert_well_behaved(resp)


def test_the_server_still_serves_after_the_fuzzing(client: TestClient) -> None:
    assert_still_serving(client)


# -- schemathesis: bodies generated from the app's own OpenAPI schema ------------------------

SCHEMA = schemathesis.openapi.from_dict(_app().openapi())


def _operations() -> list[Any]:
    operations = [cast(Any, result).ok() for result in SCHEMA.get_all_operations()]
    return [op for op in operations if op.path not in ("/openapi.json", "/docs", "/redoc")]


@pytest.mark.parametrize("operation", _operations(), ids=lambda op: f"{op.method} {op.path}")
def test_schema_generated_requests_are_well_behaved(client: TestClient, operation: Any) -> None:
    @settings(
        max_examples=40,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy())
    def run(case: Any) -> None:
        if isinstance(case.body, dict) and "model" in case.body:
            # The one model served, so that bodies get past the model check to the rest.
            case.body["model"] = MODEL
        kwargs = case.as_transport_kwargs(base_url="http://testserver")
        kwargs.pop("cookies", None)
        assert_well_behaved(client.request(**kwargs))

    run()
    assert_still_serving(client)
