"""Samples of the request's prompt started together and watched token by token, each stoppable.

Adaptive methods decide while the samples are generated: adaptive self-consistency stops the rest
once the vote is settled, DeepConf online stops a trace whose confidence drops. They get a
`WatchedSamples` from `StrategyContext.watch_samples`, which fits the samples into the budget,
stops them all at the deadline, and, when it closes, counts every token the engine generated (the
stopped samples' too) in the request's usage and budget, as one engine call.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from types import TracebackType

from ponder.core.engine import (
    CandidateStream,
    Engine,
    GeneratedSequence,
    Generation,
    SamplingOptions,
    StreamDelta,
    StreamEnd,
    TokenLogprob,
)
from ponder.core.partial import PartialGeneration

from .budget import Budget
from .usage import Usage

__all__ = ["WatchedSamples"]


class WatchedSamples:
    """`async with ctx.watch_samples(n) as samples:` then `async for delta in samples:`; each
    delta is new tokens of sample `delta.index`, whose last delta has its finish reason."""

    def __init__(
        self,
        engine: Engine,
        prompt: Sequence[int],
        n: int,
        options: SamplingOptions,
        *,
        budget: Budget,
        usage: Usage,
        request_id: str,
    ) -> None:
        self._engine = engine
        self._prompt = prompt
        self._wanted = n
        self._options = options
        self._budget = budget
        self._usage = usage
        self._request_id = request_id
        self._stream: CandidateStream | None = None
        self._ended = False
        self._interrupted = False
        self._generation: Generation | None = None
        self.n = 0
        self._partial = PartialGeneration(0, len(prompt))

    async def __aenter__(self) -> WatchedSamples:
        if self._budget.past_deadline():
            return self
        n, max_tokens = self._budget.fit_samples(1, self._wanted, self._options.max_tokens)
        if n == 0:
            return self
        options = self._options
        if max_tokens != options.max_tokens:
            options = options.replace(max_tokens=max_tokens)
        self._stream = await self._engine.stream_candidates(
            self._prompt, options, n=n, request_id=self._request_id
        )
        self.n = n
        self._partial = PartialGeneration(n, len(self._prompt))
        return self

    def __aiter__(self) -> WatchedSamples:
        return self

    async def __anext__(self) -> StreamDelta:
        if self._stream is None or self._ended:
            raise StopAsyncIteration
        while True:
            item = await self._next_item(self._stream)
            self._partial.add(item)
            if isinstance(item, StreamEnd):
                self._ended = True
                raise StopAsyncIteration
            return item

    async def _next_item(self, stream: CandidateStream) -> StreamDelta | StreamEnd:
        deadline = self._budget.deadline
        if deadline is None or self._interrupted:
            return await anext(stream)
        try:
            return await asyncio.wait_for(anext(stream), max(0.0, deadline - time.monotonic()))
        except asyncio.TimeoutError:
            # The deadline stops every sample; what they made so far still arrives.
            self._interrupted = True
            self._budget.mark("deadline")
            await stream.stop()
            return await anext(stream)

    def running(self) -> list[int]:
        """Samples still being generated (not finished, not stopped)."""
        return self._stream.running() if self._stream is not None else []

    async def stop(self, indices: Iterable[int] | None = None) -> None:
        """Stop these samples (default: all that still run); they end with reason "abort"."""
        if self._stream is not None:
            await self._stream.stop(indices)

    async def stop_below(self, floor: float) -> None:
        """Have the engine stop, with no lag, each sample whose group confidence falls below
        `floor` (`CandidateStream.stop_below`; a no-op for an engine that cannot)."""
        if self._stream is not None:
            await self._stream.stop_below(floor)

    def tokens(self, index: int) -> int:
        return self._partial.tokens(index)

    def text(self, index: int) -> str:
        return self._partial.text(index)

    def logprobs(self, index: int) -> Sequence[TokenLogprob]:
        """Sample `index`'s log-probs so far (when the options asked for them)."""
        return self._partial.logprobs(index)

    def sequences(self) -> tuple[GeneratedSequence, ...]:
        """Every sample as generated; stopped ones end with reason "abort"."""
        if self._generation is not None:
            return self._generation.sequences
        return self._partial.result(interrupted=self._interrupted).sequences

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        stream = self._stream
        if stream is None:
            return
        try:
            if exc is None:
                # Stop what still runs and read the stopped samples' last tokens: the engine
                # generated them, so they are counted.
                await stream.stop()
                async for _ in self:
                    pass
        finally:
            await stream.aclose()
            generation = self._partial.result(interrupted=self._interrupted)
            self._generation = generation
            self._usage.add_generations([generation])
            self._budget.tokens_used += generation.generated_tokens
