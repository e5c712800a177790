"""The remote engine's requests and answers in vLLM's shapes, streaming, deadlines and errors."""

from __future__ import annotations

import asyncio
import time

import pytest

from ponder.core.engine import (
    Engine,
    EngineError,
    EngineInputError,
    SamplingOptions,
    StreamDelta,
    StreamEnd,
)
from ponder.server.remote_engine import RemoteEngine
from tests.server.fake_vllm import FakeVLLM, remote_engine

PROMPT = [72, 105]


async def test_a_batch_is_one_request_per_prompt_with_token_ids_and_only_changed_fields() -> None:
    fake = FakeVLLM(1)
    fake.servers[0].cached_tokens = 1
    engine = remote_engine(fake)
    assert isinstance(engine, Engine)
    options = SamplingOptions(max_tokens=8, temperature=0.7, stop=("2",), include_stop=True)
    first, second = await engine.generate([PROMPT, [1, 2, 3]], options, n=3, request_id="r-g0")
    body = fake.servers[0].bodies[0]
    assert body == {
        "model": "served",
        "prompt": PROMPT,
        "max_tokens": 8,
        "n": 3,
        "temperature": 0.7,
        "stop": ["2"],
        "include_stop_str_in_output": True,
        "request_id": "r-g0-0",
        "return_token_ids": True,
        "add_special_tokens": False,
    }
    assert fake.servers[0].bodies[1]["prompt"] == [1, 2, 3]
    assert [s.text for s in first.sequences] == ["42"] * 3
    seq = first.sequences[0]
    assert seq.token_ids == (52, 50) and seq.finish_reason == "stop" and seq.stop_reason == "2"
    assert seq.logprobs is None and seq.cumulative_logprob is None
    assert (first.prompt_tokens, first.cached_tokens) == (2, 1)
    assert second.prompt_tokens == 3


async def test_logprobs_come_back_by_token_id_best_first() -> None:
    fake = FakeVLLM(1)
    engine = remote_engine(fake)
    (result,) = await engine.generate(
        [PROMPT], SamplingOptions(max_tokens=1, logprobs=1), request_id="r-g0"
    )
    assert fake.servers[0].bodies[0]["return_tokens_as_token_ids"] is True
    (token,) = result.sequences[0].logprobs or ()
    assert (token.token_id, token.token, token.logprob) == (52, "4", -0.5)
    assert token.top == ((65, "A", -0.1), (52, "4", -0.5))
    assert result.sequences[0].cumulative_logprob == -0.5


async def test_a_refused_request_is_an_input_error_with_vllms_message() -> None:
    engine = remote_engine(FakeVLLM(2))
    with pytest.raises(EngineInputError, match="max_tokens is too large"):
        await engine.generate([PROMPT], SamplingOptions(max_tokens=5000), request_id="r-g0")
    # The request's fault does not take a server out.
    assert all(s.healthy for s in engine.pool.servers)


async def test_streaming_yields_tokens_then_the_usage_delta() -> None:
    fake = FakeVLLM(1)
    fake.servers[0].cached_tokens = 2
    engine = remote_engine(fake)
    deltas = [d async for d in engine.stream(PROMPT, SamplingOptions(max_tokens=8), request_id="s")]
    tokens = [d for d in deltas if isinstance(d, StreamDelta)]
    assert [(d.index, d.text, d.token_ids) for d in tokens[:2]] == [
        (0, "4", (52,)),
        (0, "2", (50,)),
    ]
    assert tokens[1].finish_reason == "stop"
    assert deltas[-1] == StreamEnd(prompt_tokens=2, cached_tokens=2)
    body = fake.servers[0].bodies[0]
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert engine.running_requests() == 0


async def test_a_deadline_returns_what_was_generated_by_then() -> None:
    fake = FakeVLLM(1)
    fake.servers[0].reply = "abcdef"
    fake.servers[0].hold = asyncio.Event()  # the server stalls after the first token
    engine = remote_engine(fake)
    deadline = time.monotonic() + 0.2
    (result,) = await engine.generate(
        [PROMPT], SamplingOptions(max_tokens=6), request_id="r-g0", deadline=deadline
    )
    assert result.interrupted
    assert result.sequences[0].text == "a" and result.sequences[0].finish_reason == "abort"
    assert engine.running_requests() == 0
    # A stall is not the server's fault: it stays in the pool.
    assert engine.pool.servers[0].healthy


async def test_a_deadline_that_is_met_returns_whole_sequences() -> None:
    fake = FakeVLLM(1)
    engine = remote_engine(fake)
    (result,) = await engine.generate(
        [PROMPT],
        SamplingOptions(max_tokens=8),
        n=2,
        request_id="r-g0",
        deadline=time.monotonic() + 30,
    )
    assert not result.interrupted
    assert [s.text for s in result.sequences] == ["42", "42"]
    assert [s.finish_reason for s in result.sequences] == ["stop", "stop"]
    assert result.prompt_tokens == 2
    # Streamed under a deadline, a step's stop string still comes back (searches read it).
    fake.servers[0].reply = "4\n\n2"
    (stepped,) = await engine.generate(
        [PROMPT],
        SamplingOptions(max_tokens=8, stop=("\n\n",), include_stop=True),
        request_id="r-g1",
        deadline=time.monotonic() + 30,
    )
    assert stepped.sequences[0].text == "4\n\n"
    assert stepped.sequences[0].stop_reason == "\n\n"


async def test_a_server_that_dies_mid_stream_ends_the_stream_with_an_engine_error() -> None:
    fake = FakeVLLM(2)
    fake.servers[0].reply = fake.servers[1].reply = "abc"
    hold = asyncio.Event()
    fake.servers[0].hold = fake.servers[1].hold = hold
    engine = remote_engine(fake)
    stream = engine.stream(PROMPT, SamplingOptions(max_tokens=8), request_id="s")
    first = await stream.__anext__()
    assert isinstance(first, StreamDelta) and first.text == "a"
    home = fake.server_of("s-0")
    fake.servers[home].state = "error"
    hold.set()
    # Part of an answer went out: it cannot start again elsewhere, and must not hang.
    with pytest.raises(EngineError):
        await asyncio.wait_for(stream.__anext__(), 5)
    assert not engine.pool.servers[home].healthy


async def test_a_call_that_dies_mid_stream_under_a_deadline_fails_over() -> None:
    fake = FakeVLLM(2)
    engine = remote_engine(fake)
    fake.servers[0].state = "error"
    (result,) = await engine.generate(
        [PROMPT],
        SamplingOptions(max_tokens=8),
        request_id="r-g0",
        deadline=time.monotonic() + 30,
    )
    assert result.sequences[0].text == "42" and fake.server_of("r-g0-0") == 1


async def held_call() -> tuple[RemoteEngine, asyncio.Future]:
    """A call of two prompts that the server holds open."""
    fake = FakeVLLM(1)
    fake.servers[0].hold = asyncio.Event()
    engine = remote_engine(fake)
    call = asyncio.ensure_future(
        engine.generate([PROMPT, PROMPT], SamplingOptions(max_tokens=8), request_id="r-g0")
    )
    await asyncio.sleep(0.05)
    return engine, call


async def test_abort_closes_the_requests_of_a_call() -> None:
    engine, call = await held_call()
    assert engine.running_requests() == 2
    await engine.abort(["r-g0-0", "r-g0-1"])
    results = await asyncio.wait_for(call, 5)
    assert all(g.interrupted and g.sequences[0].finish_reason == "abort" for g in results)
    assert engine.running_requests() == 0


def test_tokenizer_operations_use_the_local_tokenizer() -> None:
    engine = remote_engine(FakeVLLM(1))
    assert engine.render_chat([{"role": "user", "content": "hi"}]) == [
        ord(c) for c in "<user>hi<assistant>"
    ]
    assert engine.decode(engine.encode("abc")) == "abc"
    assert engine.device == "remote" and engine.max_logprobs == 20


def test_the_app_on_a_pool_is_ready_while_one_server_is_and_exports_per_server_series() -> None:
    from prometheus_client.parser import text_string_to_metric_families
    from starlette.testclient import TestClient

    from ponder.server.app import create_app
    from ponder.server.settings import Settings
    from ponder.verifiers.loading import load_configured_verifiers

    fake = FakeVLLM(2)
    engine = remote_engine(fake)
    app = create_app(Settings(), engine=engine, verifiers=load_configured_verifiers(engine))
    with TestClient(app) as client:
        body = {
            "model": "remote-model",
            "messages": [{"role": "user", "content": "What is 6*7?"}],
            "max_tokens": 8,
            "tts": {"strategy": "self_consistency", "n": 4},
        }
        answer = client.post("/v1/chat/completions", json=body)
        assert answer.status_code == 200, answer.text
        assert answer.json()["usage"]["completion_tokens"] == 8
        fake.servers[0].state = "down"
        assert client.get("/ready").status_code == 200
        fake.servers[1].state = "down"
        assert client.get("/ready").status_code == 503
        # Live all the same: restarting Ponder would not bring the servers back.
        assert client.get("/health").status_code == 200
        assert client.post("/v1/chat/completions", json=body).status_code == 503
        fake.servers[1].state = "up"
        assert client.get("/ready").status_code == 200
        text = client.get("/metrics").text
    series = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert series[("ponder_engine_server_up", (("server", "0"),))] == 0
    assert series[("ponder_engine_server_up", (("server", "1"),))] == 1
    calls = sum(series.get(("ponder_engine_server_calls_total", (("server", i),)), 0) for i in "01")
    assert calls >= 1
    assert ("ponder_engine_server_call_duration_seconds_count", (("server", "0"),)) in series or (
        "ponder_engine_server_call_duration_seconds_count",
        (("server", "1"),),
    ) in series


async def test_a_call_cancelled_twice_still_closes_its_requests_and_frees_its_server() -> None:
    # A streamed response's cancel scope cancels the strategy again while it cleans up.
    engine, call = await held_call()
    assert engine.pool.servers[0].in_flight == 1
    call.cancel()
    await asyncio.sleep(0)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert engine.running_requests() == 0
    assert engine.pool.servers[0].in_flight == 0


async def test_candidates_are_streamed_requests_on_one_server_and_a_stopped_one_is_closed() -> None:
    fake = FakeVLLM(2)
    for server in fake.servers:
        server.reply = "abcdef"
        server.hold = asyncio.Event()  # each stream stalls after its first token
    engine = remote_engine(fake)
    options = SamplingOptions(max_tokens=6, seed=9)
    stream = await engine.stream_candidates(PROMPT, options, n=3, request_id="r-w0")
    finish: dict[int, str] = {}
    tokens = [0, 0, 0]
    async with stream:
        async for item in stream:
            if isinstance(item, StreamEnd):
                # Two candidates reported their prompt; the stopped one counts as sent.
                assert item.prompt_tokens == 6
                continue
            tokens[item.index] += len(item.token_ids)
            if item.finish_reason is not None:
                finish[item.index] = item.finish_reason
            if sum(tokens) == 3 and not finish:
                await stream.stop([1])
                for server in fake.servers:
                    server.hold.set()  # type: ignore[union-attr]
    assert finish == {0: "length", 1: "abort", 2: "length"}
    assert tokens == [6, 1, 6]
    bodies = [b for s in fake.servers for b in s.bodies]
    # One streamed request of one sample per candidate, all on the request's server, each seeded.
    assert sorted(b["request_id"] for b in bodies) == ["r-w0-0", "r-w0-1", "r-w0-2"]
    assert {fake.server_of(b["request_id"]) for b in bodies} == {fake.server_of("r-w0-0")}
    assert all(b["stream"] is True and b.get("n", 1) == 1 for b in bodies)
    assert len({b["seed"] for b in bodies}) == 3
    # The stopped candidate's stream was closed while the server still held it.
    assert sum(s.closed for s in fake.servers) >= 1 and engine.running_requests() == 0
