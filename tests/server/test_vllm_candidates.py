"""The in-process engine's candidates on vLLM's own output collector and output types: each
candidate is a request of n=1, all submitted before any is read, and a stopped one ends with the
tokens vLLM had already handed over (and counted), so usage matches vLLM's counter.

A fake AsyncLLM plays the engine core: it puts one token per candidate per step into the real
`RequestOutputCollector`, and its abort puts the final "abort" output, as vLLM's output processor
does. No engine is started.
"""

from __future__ import annotations

import asyncio
import warnings
from types import SimpleNamespace
from typing import Any

from ponder.core.engine import SamplingOptions, StreamDelta, StreamEnd

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from vllm.outputs import CompletionOutput, RequestOutput
    from vllm.v1.engine.output_processor import RequestOutputCollector

    from ponder.server.vllm_confidence_stop import FLOOR_METHOD, stop_marker
    from ponder.server.vllm_engine import CANDIDATE_STREAM_INTERVAL, VLLMEngine


class _Tokenizer:
    eos_token_id = 0
    backend_tokenizer = None

    def get_vocab(self) -> dict[str, int]:
        return {"a": 1}

    def decode(self, token_ids: list[int], skip_special_tokens: bool = True) -> str:
        # Token 7, the one every step makes, reads "x"; the prompt's tokens read as nothing.
        return "".join("x" for t in token_ids if t == 7)


class _SteppingLLM:
    """Candidate i generates `lengths[i]` tokens, one per step; `counted` is vLLM's counter."""

    def __init__(self, lengths: list[int]) -> None:
        self.lengths = lengths
        self.model_config = SimpleNamespace(get_vocab_size=lambda: 100)
        self.vllm_config = SimpleNamespace(
            cache_config=SimpleNamespace(num_gpu_blocks=10, block_size=32),
            scheduler_config=SimpleNamespace(max_num_seqs=128),
            parallel_config=SimpleNamespace(data_parallel_size=1),
        )
        self.collectors: dict[str, RequestOutputCollector] = {}
        self.made: dict[str, int] = {}
        self.added: list[tuple[str, Any]] = []
        self.aborted: list[str] = []
        self.rpcs: list[tuple[str, tuple]] = []
        self.counted = 0
        self.errored = False

    async def collective_rpc(self, method: str, args: tuple = ()) -> list[int]:
        self.rpcs.append((method, args))
        return [1]

    def get_tokenizer(self) -> _Tokenizer:
        return _Tokenizer()

    async def add_request(self, request_id: str, prompt: Any, params: Any) -> Any:
        collector = RequestOutputCollector(params.output_kind, request_id)
        self.collectors[request_id] = collector
        self.made[request_id] = 0
        self.added.append((request_id, params))
        return collector

    def _output(self, rid: str, tokens: list[int], reason: str | None) -> RequestOutput:
        completion = CompletionOutput(
            index=0,
            text="x" * len(tokens),
            token_ids=tokens,
            cumulative_logprob=None,
            logprobs=None,
            finish_reason=reason,
        )
        return RequestOutput(rid, None, [1, 2, 3], None, [completion], reason is not None)

    def step(self) -> None:
        """One engine step: every live request makes a token (the last one finishes it)."""
        for i, (rid, collector) in enumerate(list(self.collectors.items())):
            self.made[rid] += 1
            self.counted += 1
            done = self.made[rid] == self.lengths[i]
            collector.put(self._output(rid, [7], "length" if done else None))
            if done:
                del self.collectors[rid]

    async def abort(self, ids: list[str]) -> None:
        for rid in ids:
            self.aborted.append(rid)
            collector = self.collectors.pop(rid, None)
            if collector is not None:
                collector.put(self._output(rid, [], "abort"))


async def test_candidates_are_requests_of_one_and_a_stopped_one_reports_what_vllm_counted() -> None:
    llm = _SteppingLLM([6, 2, 6])
    engine = VLLMEngine(llm, model_name="m", max_model_len=64, on_cpu=True, max_logprobs=20)
    options = SamplingOptions(max_tokens=8, seed=3)
    stream = await engine.stream_candidates([1, 2, 3], options, n=3, request_id="r")
    # All three were handed to vLLM before any output was read, each with n=1 and its own seed.
    assert [rid for rid, _ in llm.added] == ["r-0", "r-1", "r-2"]
    assert all(p.n == 1 for _, p in llm.added)
    assert len({p.seed for _, p in llm.added}) == 3
    assert engine.running_requests() == 3
    tokens = [0, 0, 0]
    finish: dict[int, str] = {}
    end = None
    llm.step()
    llm.step()  # candidate 1 finishes; vLLM made 2 tokens for 0 and 2 that are not read yet
    async with stream:
        async for item in stream:
            if isinstance(item, StreamEnd):
                end = item
                continue
            assert isinstance(item, StreamDelta)
            tokens[item.index] += len(item.token_ids)
            if item.finish_reason is not None:
                finish[item.index] = item.finish_reason
            if item.index == 1 and item.finish_reason:
                llm.step()  # one more token each for 0 and 2, made before the stop arrives
                await stream.stop([0])
            if finish.keys() == {0, 1} and 2 not in finish:
                llm.step()
                await asyncio.sleep(0)
    assert finish == {0: "abort", 1: "length", 2: "length"}
    assert tokens == [3, 2, 6] and sum(tokens) == llm.counted
    assert llm.aborted == ["r-0"]
    assert end == StreamEnd(prompt_tokens=9, cached_tokens=0)
    assert engine.running_requests() == 0


async def test_a_candidates_text_is_decoded_once_at_its_end_when_nothing_reads_it_sooner() -> None:
    llm = _SteppingLLM([3, 2])
    engine = VLLMEngine(llm, model_name="m", max_model_len=64, on_cpu=True, max_logprobs=20)
    stream = await engine.stream_candidates(
        [1, 2, 3], SamplingOptions(max_tokens=8), n=2, request_id="r"
    )
    # vLLM neither detokenizes every step nor hands over every token alone.
    assert all(p.detokenize is False for _, p in llm.added)
    assert all(p.stream_interval == CANDIDATE_STREAM_INTERVAL for _, p in llm.added)
    texts: dict[int, list[str]] = {0: [], 1: []}
    llm.step()
    async with stream:
        async for item in stream:
            if isinstance(item, StreamDelta):
                texts[item.index].append(item.text)
                llm.step()
    # Only each candidate's last delta carries text, and it is all of it.
    assert [t[-1] for t in texts.values()] == ["xxx", "xx"]
    assert all(t[:-1] and set(t[:-1]) == {""} for t in texts.values())


async def test_a_candidate_with_stop_strings_is_detokenized_by_vllm() -> None:
    llm = _SteppingLLM([1])
    engine = VLLMEngine(llm, model_name="m", max_model_len=64, on_cpu=True, max_logprobs=20)
    options = SamplingOptions(max_tokens=8, stop=("\n\n",))
    stream = await engine.stream_candidates([1, 2, 3], options, n=1, request_id="r")
    assert llm.added[0][1].detokenize is True
    llm.step()
    async with stream:
        texts = [item.text async for item in stream if isinstance(item, StreamDelta)]
    assert texts == ["x"]


async def test_candidates_that_may_stop_below_a_floor_are_marked_and_the_floor_is_sent() -> None:
    llm = _SteppingLLM([4, 4])
    engine = VLLMEngine(
        llm, model_name="m", max_model_len=64, on_cpu=True, max_logprobs=20, confidence_stop=True
    )
    options = SamplingOptions(max_tokens=8, logprobs=5, confidence_window=16)
    stream = await engine.stream_candidates([1, 2, 3], options, n=2, request_id="r")
    # Both candidates are marked for the engine's processor under the request's key, with the
    # window, the alternatives read and the tokenizer's end-of-sequence token.
    assert [p.extra_args for _, p in llm.added] == [stop_marker("r", 16, 5, 0)] * 2
    async with stream:
        await stream.stop_below(2.5)
        assert llm.rpcs == [(FLOOR_METHOD, ("r", 2.5))]
        llm.step()
        await stream.stop()
        [item async for item in stream]


async def test_candidates_are_not_marked_where_forcing_their_end_would_break_the_request() -> None:
    unmarked = [
        SamplingOptions(max_tokens=8, logprobs=5),  # no window asked for
        SamplingOptions(max_tokens=8, confidence_window=16),  # no alternatives to read
        SamplingOptions(max_tokens=8, logprobs=5, confidence_window=16, min_tokens=4),
        SamplingOptions(max_tokens=8, logprobs=5, confidence_window=16, ignore_eos=True),
    ]
    for confidence_stop, options in [(True, o) for o in unmarked] + [
        (False, SamplingOptions(max_tokens=8, logprobs=5, confidence_window=16))
    ]:
        llm = _SteppingLLM([1])
        engine = VLLMEngine(
            llm,
            model_name="m",
            max_model_len=64,
            on_cpu=True,
            max_logprobs=20,
            confidence_stop=confidence_stop,
        )
        stream = await engine.stream_candidates([1, 2, 3], options, n=1, request_id="r")
        assert llm.added[0][1].extra_args is None
        async with stream:
            await stream.stop_below(2.5)
            llm.step()
            [item async for item in stream]
        assert llm.rpcs == []
