"""The client against the real app in process (scripted engine): every strategy streamed and
not, sync and async, completions, the listings, and errors as typed exceptions."""

from __future__ import annotations

import pytest
from openai import OpenAI
from ponder_client import (
    AsyncPonder,
    AuthenticationError,
    BadRequestError,
    BestOfN,
    ChatCompletionChunk,
    CompletionChunk,
    NotFoundError,
    Ponder,
    ProgressChunk,
    SelfConsistency,
    extra_body,
    tts_of,
)
from ponder_client.options import STRATEGY_OPTIONS
from starlette.testclient import TestClient

from tests.client.conftest import BASE, MODEL, app, ponder_on

QUESTION = "What is 2 + 3?"


@pytest.mark.parametrize("name", list(STRATEGY_OPTIONS))
def test_every_strategy_answers_streamed_and_not(ponder: Ponder, name: str) -> None:
    options = STRATEGY_OPTIONS[name](return_trace=True)
    reply = ponder.chat(QUESTION, strategy=options, max_tokens=16)
    assert reply.model == MODEL and reply.tts.strategy == name
    assert reply.choices[0].message.content
    assert reply.usage.completion_tokens == reply.tts.generated_tokens > 0

    chunks = list(ponder.stream_chat(QUESTION, strategy=options, max_tokens=16))
    answers = [c for c in chunks if isinstance(c, ChatCompletionChunk)]
    assert "".join(c.text for c in answers)  # the answer, streamed
    last = answers[-1]  # the usage chunk carries the tts block, typed
    assert last.choices == [] and last.tts is not None and last.usage is not None
    assert last.tts.strategy == name and last.usage.completion_tokens > 0
    # Every event is typed: progress (where the server reports it) or a chunk of the answer.
    progress = [c for c in chunks if isinstance(c, ProgressChunk)]
    assert len(progress) + len(answers) == len(chunks)
    assert all(c.choices == [] and c.progress.elapsed_s >= 0 for c in progress)


def test_typed_tts_block_and_returned_tokens(ponder: Ponder) -> None:
    reply = ponder.chat(QUESTION, strategy=SelfConsistency(n=3), max_tokens=16)
    tts = reply.tts
    assert tts.votes == {"5": 3.0} and tts.candidates == 3
    assert reply.usage.returned_tokens == len(reply.choices[0].message.content or "")
    assert reply.usage.completion_tokens == 3 * reply.usage.returned_tokens


def test_completions_and_listings(ponder: Ponder) -> None:
    completion = ponder.complete("2 + 3 =", strategy="best_of_n", max_tokens=16)
    assert completion.choices[0].text and completion.tts.strategy == "best_of_n"
    streamed = list(ponder.stream_complete("2 + 3 =", max_tokens=16))
    assert (
        "".join(c.text for c in streamed if isinstance(c, CompletionChunk))
        == "2 + 3 = 5.\n\nThe answer is 5."[:16]
    )
    assert ponder.models() == [MODEL] and ponder.model == MODEL
    listing = ponder.strategies()
    assert {v.name for v in listing.verifiers} >= {"self_judge", "arithmetic"}
    assert ponder.health() is True and ponder.ready() is True


def test_errors_are_typed_with_status_and_param(ponder: Ponder) -> None:
    with pytest.raises(BadRequestError) as bad:
        ponder.chat(QUESTION, strategy={"strategy": "best_of_n", "n": 0})
    assert bad.value.status == 400 and bad.value.param == "tts.n"
    with pytest.raises(BadRequestError) as unknown:
        ponder.chat(QUESTION, strategy="no_such_strategy")
    assert unknown.value.param == "tts.strategy"
    with pytest.raises(NotFoundError) as missing:
        ponder.chat(QUESTION, model="another-model")
    assert missing.value.status == 404 and missing.value.param == "model"
    # In a stream, an error the search hits after the 200 is raised as the same type.
    with pytest.raises(BadRequestError) as streamed:
        list(ponder.stream_chat(QUESTION, strategy=BestOfN(n=2, verifier="no_such_verifier")))
    assert streamed.value.param == "tts.verifier"


def test_the_api_key_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    with TestClient(app(api_key="sesame")) as http:
        with pytest.raises(AuthenticationError) as refused:
            ponder_on(http, api_key="wrong").models()
        assert refused.value.status == 401
        monkeypatch.setenv("PONDER_API_KEY", "sesame")
        assert ponder_on(http).models() == [MODEL]


async def test_async_client_chat_stream_and_errors(async_ponder: AsyncPonder) -> None:
    reply = await async_ponder.chat(QUESTION, strategy=BestOfN(n=2), max_tokens=16)
    assert reply.tts.strategy == "best_of_n" and reply.tts.candidates == 2
    chunks = [c async for c in async_ponder.stream_chat(QUESTION, strategy=BestOfN(n=2))]
    assert chunks[-1].tts is not None and chunks[-1].tts.candidates == 2  # type: ignore[union-attr]
    completion = await async_ponder.complete("2 + 3 =", max_tokens=4)
    assert completion.choices[0].text == "2 + "
    assert [c.name for c in (await async_ponder.strategies()).data] == list(STRATEGY_OPTIONS)
    assert await async_ponder.ready() is True
    with pytest.raises(BadRequestError) as bad:
        await async_ponder.chat(QUESTION, strategy={"strategy": "self_consistency", "n": 0})
    assert bad.value.param == "tts.n"


def test_the_openai_client_with_the_helpers() -> None:
    with TestClient(app()) as http:
        client = OpenAI(base_url=f"{BASE}/v1", api_key="x", http_client=http, max_retries=0)
        response = client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": QUESTION}],
            extra_body=extra_body(SelfConsistency(n=3)),
        )
        tts = tts_of(response)
        assert tts is not None and tts.strategy == "self_consistency" and tts.votes == {"5": 3}
        assert tts_of(object()) is None
