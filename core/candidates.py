"""N candidates of one prompt generated at once, watched token by token, each one stoppable.

Adaptive methods (adaptive self-consistency, DeepConf online) start every sample together, so they
never take longer than the fixed strategy, and stop the samples they no longer need. vLLM cannot
abort one child of a request with n > 1, so each candidate is its own engine request of n=1 on the
same prompt (the prefix cache prefills it once), with its own seed when the request is seeded; the
engines submit them together so that the scheduler batches them.

`MergedCandidates` (the engine protocol's `CandidateStream`) merges the candidates' streams into
one, in arrival order, and stops single candidates. An engine hands it one source per candidate
(an async iterator of that request's `StreamDelta`s, then its `StreamEnd`) and, where it can, a
way to stop one that lets the source end by itself with a last delta holding what the engine had
already generated (the in-process engine aborts the vLLM request and reads what vLLM had produced
and counted by then), so that usage is exact. Without one, stopping cancels the source, which
closes its request. An engine that can stop a candidate itself when its confidence falls below a
floor (the in-process vLLM engine, `server/vllm_confidence_stop.py`) hands over how to set it.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from types import TracebackType

from .engine import SamplingOptions, StreamDelta, StreamEnd

__all__ = ["MergedCandidates", "StopBelow", "StopCandidate", "candidate_options"]

# Candidate i of a seeded request samples with seed + i * stride, so candidates differ and the same
# request draws the same candidates again.
_SEED_STRIDE = 7_927

StopCandidate = Callable[[int], Awaitable[None]]
StopBelow = Callable[[float], Awaitable[None]]
_Item = StreamDelta | StreamEnd | BaseException | None


def candidate_options(options: SamplingOptions, index: int) -> SamplingOptions:
    """The sampling options of candidate `index` (its own seed, when the request has one)."""
    if options.seed is None or index == 0:
        return options
    return options.replace(seed=options.seed + index * _SEED_STRIDE)


class MergedCandidates:
    """Deltas of N candidates in arrival order (`index` is the candidate), each candidate's last
    one carrying its finish reason ("abort" for a stopped one), then one `StreamEnd` whose prompt
    and cached tokens are summed over the candidates' requests.

    Use it as an async context manager: leaving it stops whatever still runs.
    """

    def __init__(
        self,
        sources: Sequence[AsyncIterator[StreamDelta | StreamEnd]],
        prompt_tokens: int,
        *,
        stop_one: StopCandidate | None = None,
        stop_below: StopBelow | None = None,
    ) -> None:
        self.n = len(sources)
        self._prompt_tokens = prompt_tokens
        self._stop_one = stop_one
        self._stop_below = stop_below
        self._queue: asyncio.Queue[tuple[int, _Item]] = asyncio.Queue()
        self._finished = [False] * self.n
        self._stopping = [False] * self.n
        self._done = [False] * self.n
        self._ends: dict[int, StreamEnd] = {}
        self._end_sent = False
        # One task per candidate: each source is read as soon as its tokens arrive.
        self._tasks = [
            asyncio.ensure_future(self._pump(i, source)) for i, source in enumerate(sources)
        ]

    async def _pump(self, index: int, source: AsyncIterator[StreamDelta | StreamEnd]) -> None:
        try:
            async for item in source:
                if isinstance(item, StreamDelta):
                    # Each source is a stream of one sequence: its own index is 0.
                    item = dataclasses.replace(item, index=index)
                    if item.finish_reason is not None:
                        self._finished[index] = True
                self._queue.put_nowait((index, item))
        except asyncio.CancelledError:
            if not self._finished[index]:
                self._finished[index] = True
                abort = StreamDelta(index=index, text="", token_ids=(), finish_reason="abort")
                self._queue.put_nowait((index, abort))
            if not self._stopping[index]:
                raise
        except Exception as exc:  # handed to the reader, which raises it
            self._queue.put_nowait((index, exc))
        finally:
            self._queue.put_nowait((index, None))

    def running(self) -> list[int]:
        """Candidates not finished or stopped yet."""
        return [i for i in range(self.n) if not self._finished[i] and not self._stopping[i]]

    async def stop(self, indices: Iterable[int] | None = None) -> None:
        """Stop these candidates (default: every one still running); their last delta follows."""
        wanted = [i for i in (range(self.n) if indices is None else indices) if i in self.running()]
        for i in wanted:
            self._stopping[i] = True
        if self._stop_one is not None:
            await asyncio.gather(*(self._stop_one(i) for i in wanted))
            return
        for i in wanted:
            self._tasks[i].cancel()
        await asyncio.gather(*(self._tasks[i] for i in wanted), return_exceptions=True)

    async def stop_below(self, floor: float) -> None:
        """Have the engine stop candidates whose confidence falls below `floor`, where it can."""
        if self._stop_below is not None and self.running():
            await self._stop_below(floor)

    def __aiter__(self) -> MergedCandidates:
        return self

    async def __anext__(self) -> StreamDelta | StreamEnd:
        while not all(self._done):
            index, item = await self._queue.get()
            if item is None:
                self._done[index] = True
            elif isinstance(item, BaseException):
                await self.aclose()
                raise item
            elif isinstance(item, StreamEnd):
                self._ends[index] = item
            else:
                return item
        if self._end_sent:
            raise StopAsyncIteration
        self._end_sent = True
        ends = [self._ends.get(i) for i in range(self.n)]
        return StreamEnd(
            prompt_tokens=sum(e.prompt_tokens if e else self._prompt_tokens for e in ends),
            cached_tokens=sum(e.cached_tokens if e else 0 for e in ends),
        )

    async def aclose(self) -> None:
        """Cancel every source that still runs (their requests are closed or aborted)."""
        for i, task in enumerate(self._tasks):
            if not task.done():
                self._stopping[i] = True
                task.cancel()
        await asyncio.shield(asyncio.gather(*self._tasks, return_exceptions=True))

    async def __aenter__(self) -> MergedCandidates:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
