"""Candidates of one prompt streamed together: merging, stopping one or all, seeds, confidence."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator

from ponder.core.candidates import MergedCandidates, candidate_options
from ponder.core.confidence import (
    RunningGroupConfidence,
    bottom_group_confidence,
    group_confidences,
    lowest_group_confidence,
)
from ponder.core.engine import SamplingOptions, StreamDelta, StreamEnd, TokenLogprob


async def _source(tokens: int, log: list[str], name: str) -> AsyncIterator[StreamDelta | StreamEnd]:
    try:
        for i in range(tokens):
            await asyncio.sleep(0)
            last = i == tokens - 1
            yield StreamDelta(0, "x", (i,), finish_reason="stop" if last else None)
        yield StreamEnd(prompt_tokens=3, cached_tokens=2)
    finally:
        log.append(name)


async def test_merged_candidates_interleave_and_sum_the_prompt() -> None:
    log: list[str] = []
    stream = MergedCandidates([_source(3, log, "a"), _source(2, log, "b")], prompt_tokens=3)
    items = [item async for item in stream]
    deltas = [i for i in items if isinstance(i, StreamDelta)]
    assert [d.index for d in deltas] == [0, 1, 0, 1, 0]
    assert items[-1] == StreamEnd(prompt_tokens=6, cached_tokens=4)
    assert stream.running() == []


async def test_stopping_one_candidate_cancels_only_it_and_ends_it_with_abort() -> None:
    log: list[str] = []
    stream = MergedCandidates([_source(50, log, "long"), _source(3, log, "short")], 3)
    seen = {0: 0, 1: 0}
    finish: dict[int, str | None] = {}
    async for item in stream:
        if isinstance(item, StreamEnd):
            # The stopped candidate's request never reported its prompt: counted as sent.
            assert item.prompt_tokens == 6 and item.cached_tokens == 2
            break
        seen[item.index] += len(item.token_ids)
        if item.finish_reason is not None:
            finish[item.index] = item.finish_reason
        if seen[0] == 4:
            await stream.stop([0])
    assert finish == {0: "abort", 1: "stop"}
    assert seen == {0: 4, 1: 3}
    assert sorted(log) == ["long", "short"]


async def test_a_stop_hook_lets_the_source_report_its_last_tokens() -> None:
    stopped = asyncio.Event()

    async def source() -> AsyncIterator[StreamDelta | StreamEnd]:
        yield StreamDelta(0, "a", (1,))
        await stopped.wait()
        # What the engine made before the abort reached it arrives with the abort.
        yield StreamDelta(0, "bc", (2, 3), finish_reason="abort")
        yield StreamEnd(prompt_tokens=5)

    async def stop_one(index: int) -> None:
        stopped.set()

    stream = MergedCandidates([source()], 5, stop_one=stop_one)
    tokens = 0
    async for item in stream:
        if isinstance(item, StreamDelta):
            tokens += len(item.token_ids)
            if tokens == 1:
                await stream.stop()
    assert tokens == 3


async def test_a_failing_candidate_raises_and_stops_the_others() -> None:
    log: list[str] = []

    async def broken() -> AsyncIterator[StreamDelta | StreamEnd]:
        yield StreamDelta(0, "a", (1,))
        raise RuntimeError("engine died")

    stream = MergedCandidates([broken(), _source(100, log, "other")], 1)
    try:
        async for _ in stream:
            pass
    except RuntimeError as exc:
        assert str(exc) == "engine died"
    else:
        raise AssertionError("the failure was swallowed")
    assert log == ["other"]


def test_each_candidate_of_a_seeded_request_has_its_own_seed() -> None:
    options = SamplingOptions(max_tokens=4, seed=11)
    seeds = [candidate_options(options, i).seed for i in range(4)]
    assert seeds[0] == 11 and len(set(seeds)) == 4
    assert candidate_options(SamplingOptions(max_tokens=4), 3).seed is None


def _tokens(confidences: list[float]) -> list[TokenLogprob]:
    return [TokenLogprob(0, "t", -0.1, top=((1, "a", -c), (2, "b", -c))) for c in confidences]


def test_running_group_confidence_matches_the_whole_trace() -> None:
    values = [3.0, 1.0, 4.0, 1.5, 5.0, 0.5, 2.0]
    running = RunningGroupConfidence(3)
    lowest = []
    for token in _tokens(values):
        running.add([token])
        if running.current is not None:
            lowest.append(running.current)
    groups = group_confidences(_tokens(values), 3)
    assert all(math.isclose(a, b) for a, b in zip(lowest, groups, strict=True))
    assert running.lowest is not None and math.isclose(running.lowest, min(groups))


def test_running_trace_lowest_reads_as_the_whole_trace_does_shorter_than_a_window_too() -> None:
    for values in ([3.0, 1.0, 4.0, 1.5, 5.0], [3.0, 1.0]):
        running = RunningGroupConfidence(3)
        running.add(_tokens(values))
        whole = lowest_group_confidence(_tokens(values), 3)
        assert running.trace_lowest is not None and whole is not None
        assert math.isclose(running.trace_lowest, whole)
    assert RunningGroupConfidence(3).trace_lowest is None


def test_bottom_group_confidence_averages_the_least_confident_groups() -> None:
    tokens = _tokens([1.0] * 5 + [9.0] * 9)
    groups = sorted(group_confidences(tokens, 5))
    assert len(groups) == 10
    assert bottom_group_confidence(tokens, 5, share=0.1) == groups[0] == 1.0
    assert math.isclose(bottom_group_confidence(tokens, 5, share=0.25) or 0, sum(groups[:3]) / 3)
