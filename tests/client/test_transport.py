"""The client's HTTP behaviour on a fake transport: retries that honour Retry-After, timeouts,
stream parsing (keep-alives, progress chunks, unknown fields, error events)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
from ponder_client import (
    APITimeoutError,
    AsyncPonder,
    ChatCompletionChunk,
    Ponder,
    ProgressChunk,
    RateLimitError,
    ServiceUnavailableError,
    progress_of,
)

BASE = "http://ponder"
REPLY = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": "m",
    "choices": [
        {
            "index": 0,
            "finish_reason": "stop",
            "logprobs": None,
            "message": {"role": "assistant", "content": "391"},
        }
    ],
    "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},
    "tts": {"strategy": "none", "candidates": 1, "generated_tokens": 3},
}
BUSY = {"error": {"message": "busy", "type": "rate_limit_error", "param": None, "code": "busy"}}
PROGRESS = {
    "id": "chatcmpl-1",
    "object": "chat.completion.chunk",
    "created": 1,
    "model": "m",
    "choices": [],
    "tts_progress": {
        "strategy": "prm_beam_search",
        "phase": "expand",
        "step": 2,
        "max_steps": 8,
        "candidates_alive": 8,
        "best_score": 0.9,
        "completion_tokens": 120,
        "token_budget": None,
        "elapsed_s": 1.5,
        "a_field_from_a_newer_server": [1, 2],
    },
}


def _sse(*events: Any) -> bytes:
    parts = [": keep-alive\n\n"]
    parts += [f"data: {json.dumps(e) if not isinstance(e, str) else e}\n\n" for e in events]
    return "".join(parts).encode()


def scripted(responses: list[httpx.Response]) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return responses.pop(0)

    return httpx.MockTransport(handle), seen


def client(responses: list[httpx.Response], waits: list[float], **kw: Any) -> Ponder:
    transport, _ = scripted(responses)
    return Ponder(
        BASE, model="m", http_client=httpx.Client(transport=transport), sleep=waits.append, **kw
    )


def test_429_and_503_are_retried_after_the_servers_retry_after() -> None:
    waits: list[float] = []
    later = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=30), usegmt=True)
    ponder = client(
        [
            httpx.Response(429, json=BUSY, headers={"Retry-After": "3"}),
            httpx.Response(503, json=BUSY, headers={"Retry-After": later}),
            httpx.Response(200, json=REPLY),
        ],
        waits,
    )
    assert ponder.chat("17 * 23?").choices[0].message.content == "391"
    assert waits[0] == 3.0 and 25 < waits[1] <= 30  # seconds, then an HTTP date


def test_retries_stop_at_max_retries_with_the_typed_error() -> None:
    waits: list[float] = []
    busy = [httpx.Response(429, json=BUSY, headers={"Retry-After": "2"}) for _ in range(3)]
    with pytest.raises(RateLimitError) as refused:
        client(busy, waits, max_retries=2).chat("hi")
    assert waits == [2.0, 2.0] and refused.value.retry_after == 2.0
    # Without Retry-After the client backs off on its own; a 400 is never retried.
    waits.clear()
    unavailable = [httpx.Response(503, json={}), httpx.Response(503, json={})]
    with pytest.raises(ServiceUnavailableError):
        client(unavailable, waits, max_retries=1).chat("hi")
    assert waits == [0.5]


def test_a_stream_is_retried_before_its_first_event() -> None:
    waits: list[float] = []
    chunk = {**PROGRESS, "choices": [{"index": 0, "delta": {"content": "391"}}]}
    del chunk["tts_progress"]
    ponder = client(
        [
            httpx.Response(429, json=BUSY, headers={"Retry-After": "1"}),
            httpx.Response(200, content=_sse(PROGRESS, chunk, "[DONE]")),
        ],
        waits,
    )
    events = list(ponder.stream_chat("17 * 23?"))
    assert waits == [1.0]
    progress, answer = events
    assert isinstance(progress, ProgressChunk) and isinstance(answer, ChatCompletionChunk)
    assert progress.progress.step == 2 and progress.progress.max_steps == 8
    assert progress.progress.model_extra == {"a_field_from_a_newer_server": [1, 2]}
    assert answer.text == "391"


def test_an_error_event_in_a_stream_raises_its_type() -> None:
    ponder = client([httpx.Response(200, content=_sse(PROGRESS, BUSY))], [])
    events = ponder.stream_chat("hi")
    assert isinstance(next(events), ProgressChunk)
    with pytest.raises(RateLimitError) as error:
        next(events)
    assert error.value.status == 429 and error.value.code == "busy"


def test_timeouts_are_typed() -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    ponder = Ponder(BASE, model="m", http_client=httpx.Client(transport=httpx.MockTransport(slow)))
    with pytest.raises(APITimeoutError):
        ponder.chat("hi")


def test_the_request_carries_the_key_the_model_and_the_tts_object() -> None:
    transport, seen = scripted([httpx.Response(200, json=REPLY)])
    ponder = Ponder(BASE, api_key="k", model="m", http_client=httpx.Client(transport=transport))
    ponder.chat("hi", strategy={"strategy": "best_of_n", "n": 2}, max_tokens=9)
    (request,) = seen
    assert request.headers["authorization"] == "Bearer k"
    assert json.loads(request.content) == {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 9,
        "tts": {"strategy": "best_of_n", "n": 2},
    }


async def test_the_async_client_retries_the_same_way() -> None:
    waits: list[float] = []

    async def wait(seconds: float) -> None:
        waits.append(seconds)

    responses = [
        httpx.Response(503, json=BUSY, headers={"Retry-After": "4"}),
        httpx.Response(200, json=REPLY),
    ]
    handle: Callable[[httpx.Request], httpx.Response] = lambda request: responses.pop(0)  # noqa: E731
    http = httpx.AsyncClient(transport=httpx.MockTransport(handle))
    ponder = AsyncPonder(BASE, model="m", http_client=http, sleep=wait)
    assert (await ponder.chat("hi")).tts.strategy == "none"
    assert waits == [4.0]


def test_progress_of_reads_an_openai_chunk() -> None:
    from openai.types.chat import ChatCompletionChunk as OpenAIChunk

    chunk = OpenAIChunk.model_validate(PROGRESS)
    progress = progress_of(chunk)
    assert progress is not None and progress.candidates_alive == 8 and progress.best_score == 0.9
    assert progress_of(OpenAIChunk.model_validate({**PROGRESS, "tts_progress": None})) is None
