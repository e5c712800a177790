"""Bad input, disconnects, seeds and deadlines against the real engine: nothing breaks it."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from ponder.strategies.registry import STRATEGIES
from tests.integration.conftest import MODEL, VLLM_PRM, LiveServer, both_engines, tts_block

pytestmark = pytest.mark.integration

QUESTION: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "Write a long story about a dragon."}
]
RUNNING = "vllm:num_requests_running"


def assert_openai_error(response: httpx.Response, status: int, param: str | None) -> None:
    assert response.status_code == status
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["code"], str) and error["param"] == param
    assert "Traceback" not in error["message"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": MODEL, "messages": QUESTION, "n": 200}, "n"),
        ({"model": MODEL, "messages": QUESTION, "top_p": 0}, "top_p"),
        ({"model": MODEL, "messages": QUESTION, "top_logprobs": 3}, "top_logprobs"),
        ({"model": MODEL, "messages": QUESTION, "tts": {"strategy": "mystery"}}, "tts.strategy"),
        (
            {"model": MODEL, "messages": QUESTION, "tts": {"strategy": "best_of_n", "n": 1000}},
            "tts.n",
        ),
        (
            {"model": MODEL, "messages": QUESTION, "max_completion_tokens": 100000},
            "max_completion_tokens",
        ),
        ({"model": MODEL, "messages": []}, "messages"),
    ],
)
def test_bad_requests_are_openai_400s(server: LiveServer, body: dict, param: str) -> None:
    response = httpx.post(f"{server.base_url}/v1/chat/completions", json=body, timeout=30)
    assert_openai_error(response, 400, param)


def test_body_that_is_not_an_object(server: LiveServer) -> None:
    url = f"{server.base_url}/v1/chat/completions"
    assert_openai_error(httpx.post(url, json=[1, 2], timeout=30), 400, None)
    assert_openai_error(httpx.post(url, content=b"{not json", timeout=30), 400, None)


def test_the_openai_client_sees_a_bad_request(server: LiveServer) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        server.client.chat.completions.create(
            model=MODEL, messages=QUESTION, extra_body={"tts": {"strategy": "nope"}}
        )
    assert raised.value.status_code == 400
    assert "best_of_n" in raised.value.message


def _engine_running(server: LiveServer) -> float:
    # vLLM's own gauge, and Ponder's count of the requests it handed to vLLM: a token-level beam
    # search's one-token steps come and go between two scrapes of vLLM's gauge.
    return server.metric(RUNNING) + server.metric("ponder_engine_requests_running")


async def _wait_for_running(server: LiveServer, at_least: int) -> None:
    deadline = time.monotonic() + 60
    while _engine_running(server) < at_least:
        assert time.monotonic() < deadline, "the request never reached the engine"
        await asyncio.sleep(0.1)


async def _wait_until_idle(server: LiveServer) -> None:
    deadline = time.monotonic() + 15
    while server.metric(RUNNING) > 0 or server.metric("ponder_engine_requests_running") > 0:
        assert time.monotonic() < deadline, "engine requests kept running after the disconnect"
        await asyncio.sleep(0.1)


# Long enough that the client can leave while the strategy is still at work.
DISCONNECT_TTS: dict[str, dict[str, Any]] = {
    "none": {},
    "best_of_n": {"n": 4, "verifier": "confidence"},
    "self_consistency": {"n": 4},
    "beam_search": {"beam_width": 4},
    "prm_beam_search": {"n": 4, "beam_width": 2, "verifier": VLLM_PRM, "step_tokens": 512},
    "mcts": {"simulations": 8, "expansions": 2, "step_tokens": 512},
    "tree_of_thoughts": {"breadth": 2, "proposals": 2, "step_tokens": 512},
    "graph_of_thoughts": {"n": 2},
    "rsa": {"population": 2, "rounds": 1},
    "deepconf": {"n": 4},
    "self_refine": {},
    "compute_optimal": {},
}


def test_every_strategy_has_a_disconnect_case() -> None:
    assert set(DISCONNECT_TTS) == set(STRATEGIES)


@pytest.mark.parametrize(
    ("strategy", "stream"),
    [("best_of_n", False), ("best_of_n", True)]
    + [(name, i % 2 == 1) for i, name in enumerate(sorted(STRATEGIES)) if name != "best_of_n"],
)
@both_engines
async def test_disconnect_aborts_engine_requests(
    server: LiveServer, strategy: str, stream: bool
) -> None:
    body = {
        "model": MODEL,
        "messages": QUESTION,
        "max_completion_tokens": 1500,
        "ignore_eos": True,
        "stream": stream,
        "tts": {"strategy": strategy, **DISCONNECT_TTS[strategy]},
    }
    async with httpx.AsyncClient(base_url=server.base_url, timeout=120) as client:
        request = asyncio.create_task(client.post("/v1/chat/completions", json=body))
        await _wait_for_running(server, 1)
        request.cancel()
        with pytest.raises(asyncio.CancelledError):
            await request
    await _wait_until_idle(server)
    # The engine is fine afterwards.
    assert httpx.get(f"{server.base_url}/health", timeout=10).status_code == 200


# -- hostile input and temperature 0 on the real engine -------------------------------------

CHAT_URL = "/v1/chat/completions"


@pytest.mark.parametrize(
    ("path", "text", "param"),
    [
        (
            CHAT_URL,
            f'{{"model": "{MODEL}", "messages": [{{"role": "user", "content": "\\ud800 What?"}}]}}',
            "messages[0].content",
        ),
        ("/v1/completions", f'{{"model": "{MODEL}", "prompt": "\\ud800 What?"}}', "prompt"),
        (CHAT_URL, '{"model": "m", "x": ' + "[" * 10_000 + "]" * 10_000 + "}", None),
        (CHAT_URL, f'{{"model": "{MODEL}", "messages": [], "seed": {"7" * 5000}}}', "seed"),
    ],
    ids=["surrogate-chat", "surrogate-completions", "nested-10000", "5000-digits"],
)
def test_hostile_bodies_are_400s(server: LiveServer, path: str, text: str, param: str) -> None:
    response = httpx.post(
        f"{server.base_url}{path}",
        content=text.encode(),
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert_openai_error(response, 400, param)


def test_oversized_bodies_and_prompts_are_refused_before_tokenising(server: LiveServer) -> None:
    url = f"{server.base_url}{CHAT_URL}"
    huge = {"model": MODEL, "messages": [{"role": "user", "content": "x" * (5 << 20)}]}
    too_large = httpx.post(url, json=huge, timeout=60)
    assert_openai_error(too_large, 413, None)
    assert too_large.json()["error"]["code"] == "request_too_large"
    long = {"model": MODEL, "messages": [{"role": "user", "content": "What? " * 100_000}]}
    too_long = httpx.post(url, json=long, timeout=60)
    assert_openai_error(too_long, 400, "messages")
    assert too_long.json()["error"]["code"] == "context_length_exceeded"


def test_plain_decoding_of_several_samples_at_temperature_0_is_a_400(server: LiveServer) -> None:
    body = {"model": MODEL, "messages": QUESTION, "n": 2, "temperature": 0}
    response = httpx.post(f"{server.base_url}{CHAT_URL}", json=body, timeout=30)
    assert_openai_error(response, 400, "temperature")


@pytest.mark.parametrize(
    ("strategy", "tts"),
    [
        ("best_of_n", {"n": 2, "verifier": "confidence"}),
        ("self_consistency", {"n": 3}),
        ("mcts", {"simulations": 2, "expansions": 2, "max_steps": 2, "verifier": "arithmetic"}),
        ("compute_optimal", {"difficulty": "hard"}),
        ("beam_search", {"beam_width": 2}),
    ],
)
def test_strategies_at_temperature_0_answer(server: LiveServer, strategy: str, tts: dict) -> None:
    response = server.client.chat.completions.create(
        model=MODEL,
        messages=cast(Any, QUESTION),
        max_completion_tokens=12,
        temperature=0,
        extra_body={"tts": {"strategy": strategy, **tts}},
    )
    reported = response.model_extra["tts"]  # type: ignore[index]
    if strategy == "beam_search":
        # Greedy by construction: the request's temperature stands.
        assert "temperature" not in reported
    else:
        assert reported["temperature"] == 0.7 and reported["temperature_replaced"] is True
    assert response.choices[0].message.content


def test_seeded_requests_do_not_harm_the_engine(server: LiveServer) -> None:
    def ask(seed: int) -> str:
        response = server.client.chat.completions.create(
            model=MODEL,
            messages=QUESTION,
            max_completion_tokens=8,
            temperature=1.0,
            seed=seed,
            n=2,
        )
        return response.choices[0].message.content or ""

    with ThreadPoolExecutor(8) as pool:
        texts = list(pool.map(ask, [7, 7, 8, 9, 10, 11, 12, 13]))
    assert all(texts)
    assert httpx.get(f"{server.base_url}/health", timeout=10).status_code == 200
    # Alone on the engine, the same seed gives the same sample. (Batched beside other requests
    # it need not: the logits depend on the batch's composition in bf16.)
    assert ask(21) == ask(21)


@both_engines
def test_seeded_prompts_beyond_one_steps_token_budget_do_not_stop_the_engine(
    server: LiveServer,
) -> None:
    # Together these prompts (each different from its first token, so the prefix cache holds
    # none of them) are more than the 2048 tokens of one engine step. vLLM's CPU build prefilled
    # them in chunks and its engine died on the seeded ones; it must prefill whole prompts.
    filler = "apple, pear, plum, fig, " * 60
    client = server.client

    def ask(seed: int) -> str:
        response = client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": f"{seed} Count the fruit: {filler}"}],
            max_completion_tokens=4,
            temperature=1.0,
            seed=seed,
        )
        assert response.usage is not None and response.usage.prompt_tokens > 300
        return response.choices[0].message.content or ""

    with client, ThreadPoolExecutor(16) as pool:
        texts = list(pool.map(ask, range(100, 116)))
    assert all(texts)
    assert httpx.get(f"{server.base_url}/health", timeout=10).status_code == 200


@both_engines
def test_deadline_returns_the_best_so_far(server: LiveServer) -> None:
    exhausted_before = server.metric(
        "ponder_budget_exhausted_total", strategy="best_of_n", reason="deadline"
    )
    started = time.monotonic()
    response = server.client.chat.completions.create(
        model=MODEL,
        messages=QUESTION,
        max_completion_tokens=1500,
        extra_body={
            "ignore_eos": True,
            "tts": {
                "strategy": "best_of_n",
                "n": 2,
                "verifier": "confidence",
                "budget": {"deadline_s": 1.5},
            },
        },
    )
    elapsed = time.monotonic() - started
    tts = tts_block(response)
    assert tts["budget_exhausted"] == "deadline"
    assert elapsed < 15
    assert response.choices[0].finish_reason == "length"
    assert 0 < response.usage.completion_tokens < 3000  # type: ignore[union-attr]
    assert (
        server.metric("ponder_budget_exhausted_total", strategy="best_of_n", reason="deadline")
        == exhausted_before + 1
    )


@both_engines
def test_token_budget_is_never_exceeded(server: LiveServer) -> None:
    response = server.client.chat.completions.create(
        model=f"{MODEL}@self_consistency",
        messages=QUESTION,
        max_completion_tokens=20,
        extra_body={"tts": {"n": 8, "budget": {"max_tokens": 50}}},
    )
    tts = tts_block(response)
    assert response.usage is not None and response.usage.completion_tokens <= 50
    assert tts["budget_exhausted"] == "tokens" and tts["candidates"] == 2
