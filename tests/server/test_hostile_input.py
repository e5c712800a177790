"""Hostile bodies and temperature 0 over HTTP, on the scripted engine: 4xx naming the field, never
a 500, and the engine never asked."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from ponder.core.engine import EngineInputError
from ponder.strategies.registry import STRATEGIES
from tests.scripted import ScriptedEngine
from tests.server.test_http import CHAT, MODEL, assert_error, chat, serve

COMPLETIONS = "/v1/completions"


def raw_post(client: Any, path: str, text: str) -> Any:
    return client.post(path, content=text.encode(), headers={"content-type": "application/json"})


MESSAGE_WITH_SURROGATE = (
    f'{{"model": "{MODEL}", "messages": [{{"role": "user", "content": "\\ud800 What is 2 + 3?"}}]}}'
)


def nested(depth: int) -> str:
    return '{"model": "m", "x": ' + "[" * depth + "]" * depth + "}"


@pytest.mark.parametrize(
    ("path", "text", "param", "code"),
    [
        pytest.param(
            CHAT,
            MESSAGE_WITH_SURROGATE,
            "messages[0].content",
            "invalid_value",
            id="surrogate-in-message",
        ),
        pytest.param(
            COMPLETIONS,
            f'{{"model": "{MODEL}", "prompt": "\\udfff What is 2 + 3?"}}',
            "prompt",
            "invalid_value",
            id="surrogate-in-prompt",
        ),
        pytest.param(
            COMPLETIONS,
            f'{{"model": "{MODEL}", "prompt": ["ok", "\\ud83d"]}}',
            "prompt[1]",
            "invalid_value",
            id="surrogate-in-prompt-list",
        ),
        pytest.param(
            CHAT,
            f'{{"model": "{MODEL}", "messages": [], "tts": {{"\\ud800": 1}}}}',
            "tts",
            "invalid_value",
            id="surrogate-in-field-name",
        ),
        pytest.param(CHAT, nested(10_000), None, "invalid_body", id="nested-10000"),
        pytest.param(CHAT, nested(70), None, "invalid_body", id="nested-70"),
        pytest.param(
            CHAT,
            f'{{"model": "{MODEL}", "messages": [], "seed": {"9" * 5000}}}',
            "seed",
            "invalid_value",
            id="5000-digit-integer",
        ),
        pytest.param(
            CHAT,
            f'{{"model": "{MODEL}", "messages": [], "tts": {{"n": -{"1" * 100}}}}}',
            "tts.n",
            "invalid_value",
            id="100-digit-integer-in-tts",
        ),
        pytest.param(CHAT, '{"model": "m", "temperature": NaN}', None, "invalid_json", id="nan"),
        pytest.param(
            CHAT, '{"model": "m", "top_p": -Infinity}', None, "invalid_json", id="infinity"
        ),
    ],
)
def test_hostile_bodies_are_400s_naming_the_field(
    path: str, text: str, param: str | None, code: str
) -> None:
    engine = ScriptedEngine(texts=["x"])
    with serve(engine) as (client, _):
        resp = raw_post(client, path, text)
        assert engine.calls == []
        # The server is fine afterwards.
        ok = client.post(CHAT, json=chat())
    assert_error(resp, 400, param, code)
    assert ok.status_code == 200 and ok.json()["choices"][0]["message"]["content"] == "x"


def test_invalid_utf8_is_a_400() -> None:
    with serve() as (client, engine):
        resp = client.post(CHAT, content=b'{"model": "\xff\xfe"}')
    assert_error(resp, 400, None, "invalid_json")
    assert engine.calls == []


def test_numbers_within_the_limit_still_work() -> None:
    # A seed of 19 digits and a long token-id prompt pass decoding unchanged.
    engine = ScriptedEngine(texts=["ok"])
    body = {"model": MODEL, "prompt": [65] * 2000, "seed": 2**62, "max_tokens": 4}
    with serve(engine) as (client, _):
        resp = client.post(COMPLETIONS, json=body)
    assert resp.status_code == 200, resp.text
    assert engine.calls[0].options.seed == 2**62
    assert engine.calls[0].prompts[0] == [65] * 2000


@pytest.mark.parametrize("chunked", [False, True])
def test_body_over_the_limit_is_a_413(chunked: bool) -> None:
    body = json.dumps(chat("x" * 5000)).encode()

    def pieces() -> Iterator[bytes]:
        for i in range(0, len(body), 1000):
            yield body[i : i + 1000]

    with serve(max_body_bytes=4096) as (client, engine):
        headers = {"content-type": "application/json"}
        resp = client.post(CHAT, content=pieces() if chunked else body, headers=headers)
        small = client.post(CHAT, json=chat("hi"))
    error = assert_error(resp, 413, None, "request_too_large")
    assert "4096 bytes" in error["message"]
    assert engine.calls[:-1] == [] and small.status_code != 413


@dataclass
class CountingEngine(ScriptedEngine):
    """Records the thread of every tokenisation of a request's prompt."""

    prompt: str = "PROMPT"
    tokenized_on: list[threading.Thread] = field(default_factory=list)

    def render_chat(self, messages: Sequence[dict[str, Any]], **kwargs: Any) -> list[int]:
        if any(self.prompt in m["content"] for m in messages):
            self.tokenized_on.append(threading.current_thread())
        return super().render_chat(messages, **kwargs)

    def encode(self, text: str) -> list[int]:
        if text == self.prompt:
            self.tokenized_on.append(threading.current_thread())
        return super().encode(text)


def test_prompt_that_surely_cannot_fit_is_refused_without_tokenising() -> None:
    engine = CountingEngine(texts=["x"], max_model_len=64, max_token_chars=4, prompt="y" * 300)
    with serve(engine) as (client, _):
        chat_resp = client.post(CHAT, json=chat(engine.prompt))
        completion = client.post(COMPLETIONS, json={"model": MODEL, "prompt": engine.prompt})
    for resp, param in ((chat_resp, "messages"), (completion, "prompt")):
        error = assert_error(resp, 400, param, "context_length_exceeded")
        assert "300 characters" in error["message"]
    assert engine.tokenized_on == [] and engine.calls == []


async def _current_thread() -> threading.Thread:
    return threading.current_thread()


def test_prompts_are_tokenised_off_the_event_loop() -> None:
    engine = CountingEngine(texts=["a", "b"])
    with serve(engine) as (client, _):
        loop_thread = client.portal.call(_current_thread)  # type: ignore[union-attr]
        assert client.post(CHAT, json=chat(engine.prompt)).status_code == 200
        completion = {"model": MODEL, "prompt": engine.prompt}
        assert client.post(COMPLETIONS, json=completion).status_code == 200
    assert len(engine.tokenized_on) == 2
    assert all(t is not loop_thread for t in engine.tokenized_on)


# -- temperature 0 ---------------------------------------------------------------------------


def test_plain_decoding_with_several_samples_at_temperature_0_is_a_400() -> None:
    for stream in (False, True):
        with serve(ScriptedEngine(texts=["a", "b"])) as (client, engine):
            resp = client.post(CHAT, json=chat(n=2, temperature=0, stream=stream))
        error = assert_error(resp, 400, "temperature")
        assert "n=2" in error["message"]
        assert engine.calls == []


def test_greedy_single_samples_stay_greedy() -> None:
    with serve(ScriptedEngine(texts=["a"])) as (client, engine):
        resp = client.post(CHAT, json=chat(temperature=0))
    assert resp.status_code == 200, resp.text
    assert engine.calls[0].options.temperature == 0
    assert "temperature" not in resp.json()["tts"]


def test_search_at_temperature_0_samples_at_the_exploration_temperature() -> None:
    engine = ScriptedEngine(texts=["5", "66", "777"], judge=lambda a: 0.9 if a == "66" else 0.1)
    body = chat(temperature=0, tts={"strategy": "best_of_n", "n": 3})
    with serve(engine, exploration_temperature=0.4) as (client, _):
        resp = client.post(CHAT, json=body)
    assert resp.status_code == 200, resp.text
    tts = resp.json()["tts"]
    assert tts["temperature"] == 0.4 and tts["temperature_replaced"] is True
    assert engine.calls[0].n == 3 and engine.calls[0].options.temperature == 0.4
    assert resp.json()["choices"][0]["message"]["content"] == "66"


def test_streamed_search_reports_the_exploration_temperature() -> None:
    engine = ScriptedEngine(texts=["5", "66"], judge=lambda a: 0.5)
    body = chat(
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
        tts={"strategy": "best_of_n", "n": 2},
    )
    with serve(engine) as (client, _):
        resp = client.post(CHAT, json=body)
    events = [json.loads(line[6:]) for line in resp.text.splitlines() if line[6:7] == "{"]
    assert events[-1]["tts"]["temperature"] == 0.7
    assert events[-1]["tts"]["temperature_replaced"] is True


def _answers(prompt: str, n: int) -> list[str]:
    return ["2 + 3 = 5.\n\nThe answer is 5."] * n


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
def test_every_strategy_at_temperature_0_answers(strategy: str) -> None:
    # The scripted engine refuses greedy n > 1 exactly as vLLM does, so a strategy that asked for
    # it would fail here.
    engine = ScriptedEngine(
        responder=_answers,
        judge=lambda _: 0.6,
        next_tokens=lambda ids: [(ord("5"), -0.1), (0, -0.5)],
    )
    body = chat(temperature=0, max_completion_tokens=16, tts={"strategy": strategy})
    with serve(engine) as (client, _):
        resp = client.post(CHAT, json=body)
    assert resp.status_code == 200, resp.text
    tts = resp.json()["tts"]
    sampled = {c.options.temperature for c in engine.calls if c.n > 1}
    assert 0.0 not in sampled
    if sampled:
        assert tts["temperature_replaced"] is True


class RefusingEngine(ScriptedEngine):
    async def generate(self, *args: Any, **kwargs: Any) -> Any:
        raise EngineInputError("top_p must be in (0, 1], got 0.0.", param="top_p")

    async def stream(self, *args: Any, **kwargs: Any) -> Any:
        # A streamed self-consistency vote samples through the engine's stream.
        raise EngineInputError("top_p must be in (0, 1], got 0.0.", param="top_p")
        yield


def test_an_engine_refusal_is_a_400_naming_the_field() -> None:
    with serve(RefusingEngine(texts=["x"])) as (client, _):
        plain = client.post(CHAT, json=chat())
        streamed = client.post(CHAT, json=chat(stream=True, tts={"strategy": "self_consistency"}))
    assert_error(plain, 400, "top_p")
    error = json.loads(streamed.text.splitlines()[0][6:])["error"]
    assert error["param"] == "top_p" and error["type"] == "invalid_request_error"


def test_unknown_fields_are_logged_briefly(caplog: pytest.LogCaptureFixture) -> None:
    extra = {f"field_{i:04d}_{'x' * 100}": i for i in range(1000)}
    logs = caplog.at_level("INFO", logger="ponder.server.serving")
    with serve(ScriptedEngine(texts=["ok"])) as (client, _), logs:
        resp = client.post(CHAT, json={**chat(), **extra})
    assert resp.status_code == 200
    [line] = [r.getMessage() for r in caplog.records if "unknown request fields" in r.getMessage()]
    assert line.endswith("and 980 more") and len(line) < 1200
