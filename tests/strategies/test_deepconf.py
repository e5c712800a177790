"""DeepConf with the scripted engine: which traces vote, with what weight, and which are stopped.

The scripted engine reports every token's alternatives at the log-prob `top_logprob` gives, so a
trace's token confidence is minus that value and its group confidences are exact.
"""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from ponder.strategies.deepconf import DeepConf, DeepConfParams, quantile
from ponder.strategies.registry import strategy_class
from tests.scripted import ScriptedEngine
from tests.strategies.helpers import make_context

# Confidence by the text's first word.
CONFIDENCE = {"sure": 5.0, "fine": 3.0, "meh": 2.0, "lost": 0.5}


def scripted(texts: list[str]) -> ScriptedEngine:
    return ScriptedEngine(texts=texts, top_logprob=lambda text, _: -CONFIDENCE[text.split()[0]])


def params(**fields: object) -> DeepConfParams:
    return DeepConfParams.model_validate({"strategy": "deepconf", **fields})


def test_registered_with_typed_options() -> None:
    assert strategy_class("deepconf") is DeepConf
    with pytest.raises(ValidationError):
        params(mode="sometimes")
    assert params(n=8).top_logprobs_needed() == {"tts.top_logprobs": 5}


def test_quantile_interpolates() -> None:
    assert quantile([3.0, 1.0, 2.0], 0.5) == 2.0
    assert quantile([1.0, 2.0], 0.1) == pytest.approx(1.1)


async def test_offline_keeps_the_most_confident_traces() -> None:
    # A plain majority says 5; the two most confident traces say 6.
    engine = scripted(["meh 5", "sure 6", "fine 6", "lost 5", "meh 5"])
    ctx = make_context(engine, max_tokens=64)
    result = await DeepConf(params(mode="offline", n=5, keep=0.4)).run(ctx)
    assert len(engine.calls) == 1 and engine.calls[0].options.logprobs == 5
    assert result.details["votes"] == {"6": pytest.approx(8.0)}
    assert result.candidates[result.ranking[0]].answer == "6"
    assert [c.answer for c in result.candidates] == [None, "6", "6", None, None]
    assert result.details["threshold"] == pytest.approx(3.0)


async def test_offline_weights_each_vote_by_its_confidence() -> None:
    engine = scripted(["lost 5", "lost 5", "lost 5", "sure 6"])
    result = await DeepConf(params(mode="offline", n=4, keep=1.0)).run(make_context(engine))
    assert result.details["votes"] == {"6": pytest.approx(5.0), "5": pytest.approx(1.5)}
    assert result.candidates[result.ranking[0]].answer == "6"


async def test_online_stops_a_trace_whose_confidence_falls_below_the_warmup_threshold() -> None:
    lost = "lost " + "wandering " * 20 + "so 5"
    sure = "sure " + "steady " * 20 + "so 7"
    engine = scripted(["sure 7", "fine 7", lost, sure])
    ctx = make_context(engine, max_tokens=256)
    p = params(n=4, warmup=2, window=4, keep=0.9, consensus=1.0)
    result = await DeepConf(p).run(ctx)
    assert len(engine.calls) == 1 and engine.calls[0].n == 4
    # The warm-up's lowest group confidences are 3 and 5: the threshold is their 10% quantile.
    assert result.details["threshold"] == pytest.approx(3.2)
    stopped = result.candidates[2].sequence
    assert stopped.finish_reason == "abort" and 4 <= stopped.num_tokens < len(lost)
    assert result.candidates[2].answer is None
    assert result.details["stopped_low_confidence"] == 1 and result.details["stopped"] == 1
    assert engine.aborted == [f"{engine.calls[0].request_id}-2"]
    # The confident long trace ran to its end; its vote and the warm-up's (above it) count.
    assert result.candidates[3].sequence.finish_reason == "stop"
    assert result.details["votes"] == {"7": pytest.approx(10.0)}
    counted = sum(c.sequence.num_tokens for c in result.candidates)
    assert ctx.usage.completion_tokens == counted < len("sure 7fine 7") + len(lost) + len(sure)


async def test_online_lets_an_engine_that_can_stop_a_trace_at_its_first_token_below() -> None:
    # Sure for its first 20 tokens, then lost: it falls below the threshold after it was set.
    drift = "sure " + "steady " * 5 + "wandering " * 10 + "so 5"

    def top_logprob(text: str, position: int) -> float:
        return -0.5 if text == drift and position >= 20 else -CONFIDENCE[text.split()[0]]

    engine = ScriptedEngine(
        texts=["sure 7", "fine 7", drift], top_logprob=top_logprob, stops_below=True
    )
    ctx = make_context(engine, max_tokens=256)
    p = params(n=3, warmup=2, window=4, keep=0.9, consensus=1.0)
    result = await DeepConf(p).run(ctx)
    assert engine.calls[0].options.confidence_window == 4
    assert engine.floors == [pytest.approx(3.2)] == [result.details["threshold"]]
    # The engine ended it at the first token whose window of 4 is below 3.2 (two tokens at 5,
    # two at 0.5), with its end-of-sequence token, before the strategy's own stop: nothing was
    # aborted.
    ended = result.candidates[2].sequence
    assert ended.num_tokens == 22 and ended.token_ids[-1] == engine.eos_token_id
    assert engine.aborted == []
    # It is reported as a stopped trace, out of the vote, like one the strategy aborted.
    assert ended.finish_reason == "abort" and result.candidates[2].answer is None
    assert result.details["stopped_low_confidence"] == 1 and result.details["stopped"] == 1
    assert result.details["votes"] == {"7": pytest.approx(5.0)}


async def test_online_stops_the_rest_at_consensus() -> None:
    long = "sure " + "steady " * 30 + "so 8"
    engine = scripted(["sure 7", "sure 7", "fine 7", long, long])
    ctx = make_context(engine, max_tokens=256)
    result = await DeepConf(params(n=5, warmup=3, window=4, consensus=0.95)).run(ctx)
    assert result.details["stopped"] == 2 and result.details["stopped_low_confidence"] == 0
    assert result.candidates[result.ranking[0]].answer == "7"
    assert all(c.sequence.finish_reason == "abort" for c in result.candidates[3:])
    assert ctx.usage.completion_tokens < 3 * 6 + 2 * len(long)


async def test_online_defaults_stop_the_rest_when_the_two_surest_of_three_agree() -> None:
    long = "sure " + "steady " * 30 + "so 8"
    engine = scripted(["meh 5", "sure 7", "fine 7", *[long] * 13])
    ctx = make_context(engine, max_tokens=256)
    result = await DeepConf(params()).run(ctx)
    assert len(engine.calls) == 1 and engine.calls[0].n == 16
    # keep 0.5 of a warm-up of 3: the threshold is the median of 2, 5 and 3.
    assert result.details["threshold"] == pytest.approx(3.0)
    assert [c.answer for c in result.candidates[:3]] == [None, "7", "7"]
    assert result.details["stopped"] == 13 and result.details["stopped_low_confidence"] == 0
    assert result.candidates[result.ranking[0]].answer == "7"


async def test_online_defaults_go_on_while_the_two_surest_disagree() -> None:
    soon = "sure " + "steady " * 10 + "so 7"
    late = "sure " + "steady " * 30 + "so 8"
    engine = scripted(["sure 7", "sure 6", "meh 5", soon, *[late] * 12])
    result = await DeepConf(params()).run(make_context(engine, max_tokens=256))
    # 7 and 6 hold half the kept vote each, under the consensus of 0.6: the rest go on until
    # the next trace makes it 7 by two thirds.
    assert result.candidates[3].sequence.finish_reason == "stop"
    assert result.details["stopped"] == 12
    assert result.details["votes"] == {"7": pytest.approx(10.0), "6": pytest.approx(5.0)}
    assert result.candidates[result.ranking[0]].answer == "7"
