"""Token streaming: the strategies that implement it, and how a stream's end is counted."""

from __future__ import annotations

from ponder.core.engine import StreamDelta
from ponder.strategies.base import StrategyParams
from ponder.strategies.best_of_n import BestOfN, BestOfNParams
from ponder.strategies.none import PlainDecoding
from ponder.strategies.streaming import TokenStreaming
from tests.scripted import ScriptedEngine
from tests.strategies.helpers import make_context


def test_plain_decoding_streams_tokens_and_a_search_does_not() -> None:
    assert isinstance(PlainDecoding(StrategyParams()), TokenStreaming)
    assert not isinstance(BestOfN(BestOfNParams(strategy="best_of_n")), TokenStreaming)


async def test_the_stream_end_carries_the_prompt_cost_and_is_not_passed_on() -> None:
    engine = ScriptedEngine(texts=["42", "7"])
    ctx = make_context(engine, choices=2)
    items = [item async for item in PlainDecoding(StrategyParams()).stream(ctx)]
    assert all(isinstance(item, StreamDelta) for item in items)
    assert "".join(d.text for d in items if d.index == 0) == "42"
    assert "".join(d.text for d in items if d.index == 1) == "7"
    assert ctx.usage.prompt_tokens == len(ctx.prompt_token_ids) > 0
    assert ctx.usage.completion_tokens == 3 and ctx.usage.engine_calls == 1
