"""Server-sent events for both kinds of strategy.

Plain decoding streams tokens as the engine makes them. A search cannot know its answer until it
ends, so it sends SSE comments as keep-alives while it searches and then streams the chosen
answers. Either way the answers come as deltas first (`stream_deltas`), which the chat and
completion chunks here, and the Responses events of `responses_stream.py`, put on the wire; the
caller appends the usage chunk and `[DONE]`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ponder.core.engine import GeneratedSequence, StreamDelta, TokenLogprob
from ponder.strategies.base import RankedCandidate, StrategyResult
from ponder.strategies.streaming import TokenStreaming

from .protocol import TTSBlock, UsageInfo
from .responses import (
    Outcome,
    chat_logprobs,
    completion_logprobs,
    openai_finish_reason,
    sse,
    wire,
)

if TYPE_CHECKING:
    from .planning import PreparedRequest

__all__ = [
    "KEEPALIVE",
    "chosen_deltas",
    "chunk",
    "stream_chunks",
    "stream_deltas",
    "token_deltas",
    "usage_chunk",
]

KEEPALIVE = ": keep-alive\n\n"


def _envelope(prepared: PreparedRequest) -> dict[str, Any]:
    return {
        "id": prepared.response_id,
        "object": "chat.completion.chunk" if prepared.endpoint == "chat" else "text_completion",
        "created": prepared.created,
        "model": prepared.model,
    }


def chunk(
    prepared: PreparedRequest,
    index: int,
    *,
    text: str = "",
    role: bool = False,
    logprobs: tuple[TokenLogprob, ...] | None = None,
    finish_reason: str | None = None,
) -> str:
    choice: dict[str, Any] = {"index": index, "finish_reason": finish_reason, "logprobs": None}
    top = prepared.top_logprobs
    with_logprobs = top is not None and logprobs is not None
    if prepared.endpoint == "chat":
        choice["delta"] = {"role": "assistant", "content": text} if role else {"content": text}
        if with_logprobs:
            choice["logprobs"] = chat_logprobs(logprobs or (), top or 0)
    else:
        choice["text"] = text
        if with_logprobs:
            choice["logprobs"] = completion_logprobs(logprobs or (), top or 0)
    return sse({**_envelope(prepared), "choices": [choice]})


def usage_chunk(prepared: PreparedRequest, usage: UsageInfo, tts: TTSBlock) -> str:
    """The chunk before `[DONE]` when `stream_options.include_usage` is set; carries `tts` too."""
    return sse({**_envelope(prepared), "choices": [], "usage": wire(usage), "tts": wire(tts)})


async def token_deltas(
    prepared: PreparedRequest, strategy: TokenStreaming, outcomes: list[Outcome]
) -> AsyncIterator[StreamDelta | None]:
    """A token-streaming strategy: each token as it is generated; the finished sequences land
    in `outcomes`."""
    ctx = prepared.contexts[0]
    texts: dict[int, list[str]] = {}
    token_ids: dict[int, list[int]] = {}
    finish: dict[int, str] = {}
    async for delta in strategy.stream(ctx):
        texts.setdefault(delta.index, []).append(delta.text)
        token_ids.setdefault(delta.index, []).extend(delta.token_ids)
        if delta.finish_reason:
            finish[delta.index] = delta.finish_reason
        yield delta
    sequences = [
        GeneratedSequence(
            text="".join(texts.get(i, [])),
            token_ids=tuple(token_ids.get(i, [])),
            finish_reason=finish.get(i, "abort"),  # type: ignore[arg-type]
        )
        for i in range(prepared.choices)
    ]
    result = StrategyResult([RankedCandidate(s) for s in sequences], list(range(len(sequences))))
    outcomes.append(Outcome(ctx, result))


async def chosen_deltas(
    prepared: PreparedRequest,
    run: Callable[[PreparedRequest], Awaitable[list[Outcome]]],
    outcomes: list[Outcome],
    keepalive_s: float,
) -> AsyncIterator[StreamDelta | None]:
    """A search: None (a keep-alive) while it runs, then each chosen answer as one delta."""
    task = asyncio.ensure_future(run(prepared))
    try:
        while not task.done():
            done, _ = await asyncio.wait({task}, timeout=keepalive_s)
            if not done:
                yield None
        outcomes.extend(task.result())
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    for p, outcome in enumerate(outcomes):
        for j, candidate in enumerate(outcome.chosen(prepared.choices)):
            s = candidate.sequence
            yield StreamDelta(
                index=p * prepared.choices + j,
                text=s.text,
                token_ids=s.token_ids,
                logprobs=s.logprobs,
                finish_reason=s.finish_reason,
            )


def stream_deltas(
    prepared: PreparedRequest,
    run: Callable[[PreparedRequest], Awaitable[list[Outcome]]],
    outcomes: list[Outcome],
    keepalive_s: float,
) -> AsyncIterator[StreamDelta | None]:
    """What a stream sends, whatever its wire format: the answers' deltas as they come (None is a
    keep-alive); the outcomes land in `outcomes` once the deltas are exhausted."""
    strategy = prepared.strategy
    if isinstance(strategy, TokenStreaming) and len(prepared.contexts) == 1:
        return token_deltas(prepared, strategy, outcomes)
    return chosen_deltas(prepared, run, outcomes, keepalive_s)


async def stream_chunks(
    prepared: PreparedRequest, deltas: AsyncIterator[StreamDelta | None]
) -> AsyncIterator[str]:
    """Chat and completion chunks of the deltas; a chat choice opens with its role."""
    opened: set[int] = set()
    async for delta in deltas:
        if delta is None:
            yield KEEPALIVE
            continue
        if delta.index not in opened and prepared.endpoint == "chat":
            yield chunk(prepared, delta.index, role=True)
        opened.add(delta.index)
        yield chunk(
            prepared,
            delta.index,
            text=delta.text,
            logprobs=delta.logprobs,
            finish_reason=openai_finish_reason(delta.finish_reason),
        )
