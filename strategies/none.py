"""`none`: plain decoding, exactly what vLLM would do with the same request, streamed live.

It implements `TokenStreaming` (see `streaming.py`), so the server sends its tokens as they come.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import ClassVar

from ponder.core.engine import StreamDelta, StreamEnd

from .base import RankedCandidate, Strategy, StrategyResult
from .context import StrategyContext

__all__ = ["PlainDecoding"]


class PlainDecoding(Strategy):
    choices_are_samples: ClassVar[bool] = True
    samples_whole_answers: ClassVar[bool] = True
    name: ClassVar[str] = "none"
    description: ClassVar[str] = "Plain decoding: the request's n samples, streamed token by token."

    async def run(self, ctx: StrategyContext) -> StrategyResult:
        generations = await ctx.sample(ctx.choices)
        sequences = generations[0].sequences if generations else ()
        return StrategyResult(
            candidates=[RankedCandidate(s) for s in sequences], ranking=list(range(len(sequences)))
        )

    async def stream(self, ctx: StrategyContext) -> AsyncIterator[StreamDelta]:
        """Yield tokens as the engine produces them; usage is counted when the stream ends."""
        n, max_tokens = ctx.budget.fit_samples(1, ctx.choices, ctx.options.max_tokens)
        options = ctx.options.replace(max_tokens=max(1, max_tokens))
        async for item in ctx.engine.stream(
            ctx.prompt_token_ids, options, n=max(1, n), request_id=ctx.call_id("g")
        ):
            if isinstance(item, StreamEnd):
                ctx.usage.engine_calls += 1
                ctx.usage.prompt_tokens += item.prompt_tokens
                ctx.usage.cached_tokens += item.cached_tokens
                continue
            ctx.usage.completion_tokens += len(item.token_ids)
            ctx.budget.tokens_used += len(item.token_ids)
            yield item
