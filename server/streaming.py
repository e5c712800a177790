"""Server-sent events for both kinds of strategy.

Plain decoding streams tokens as the engine makes them. A search cannot know its answer until it
ends, so it sends SSE comments as keep-alives while it searches and then streams the chosen
answers. Either way the caller appends the usage chunk and `[DONE]`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ponder.core.engine import GeneratedSequence, TokenLogprob
from ponder.core.reasoning import StreamSplitter
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

__all__ = ["KEEPALIVE", "chunk", "stream_chosen", "stream_tokens", "usage_chunk"]

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
    reasoning: str | None = None,
) -> str:
    choice: dict[str, Any] = {"index": index, "finish_reason": finish_reason, "logprobs": None}
    top = prepared.top_logprobs
    with_logprobs = top is not None and logprobs is not None
    if prepared.endpoint == "chat":
        choice["delta"] = {"role": "assistant", "content": text} if role else {"content": text}
        if reasoning:  # vLLM's field name; a delta of thinking carries no content
            choice["delta"] = {"reasoning": reasoning}
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


async def stream_tokens(
    prepared: PreparedRequest, strategy: TokenStreaming, outcomes: list[Outcome]
) -> AsyncIterator[str]:
    """A token-streaming strategy: each token as it is generated; the finished sequences land
    in `outcomes`."""
    ctx = prepared.contexts[0]
    fmt = ctx.reasoning if prepared.include_reasoning else None
    splitters: dict[int, StreamSplitter] = {}
    texts: dict[int, list[str]] = {}
    token_ids: dict[int, list[int]] = {}
    finish: dict[int, str] = {}
    async for delta in strategy.stream(ctx):
        first = delta.index not in texts
        texts.setdefault(delta.index, []).append(delta.text)
        token_ids.setdefault(delta.index, []).extend(delta.token_ids)
        if delta.finish_reason:
            finish[delta.index] = delta.finish_reason
        if first and prepared.endpoint == "chat":
            yield chunk(prepared, delta.index, role=True)
        if fmt is not None:
            splitter = splitters.setdefault(delta.index, StreamSplitter(fmt))
            thinking, answer = splitter.feed(delta.text, last=delta.finish_reason is not None)
            if thinking:
                yield chunk(prepared, delta.index, reasoning=thinking)
            yield chunk(
                prepared,
                delta.index,
                text=answer,
                logprobs=delta.logprobs,
                finish_reason=openai_finish_reason(delta.finish_reason),
            )
            continue
        yield chunk(
            prepared,
            delta.index,
            text=delta.text,
            logprobs=delta.logprobs,
            finish_reason=openai_finish_reason(delta.finish_reason),
        )
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


async def stream_chosen(
    prepared: PreparedRequest,
    run: Callable[[PreparedRequest], Awaitable[list[Outcome]]],
    outcomes: list[Outcome],
    keepalive_s: float,
) -> AsyncIterator[str]:
    """A search: keep-alives while it runs, then the chosen answers."""
    task = asyncio.ensure_future(run(prepared))
    try:
        while not task.done():
            done, _ = await asyncio.wait({task}, timeout=keepalive_s)
            if not done:
                yield KEEPALIVE
        outcomes.extend(task.result())
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    for p, outcome in enumerate(outcomes):
        for j, candidate in enumerate(outcome.chosen(prepared.choices)):
            index = p * prepared.choices + j
            s = candidate.sequence
            if prepared.endpoint == "chat":
                yield chunk(prepared, index, role=True)
                if s.reasoning and prepared.include_reasoning:
                    yield chunk(prepared, index, reasoning=s.reasoning)
            yield chunk(
                prepared,
                index,
                text=s.text,
                logprobs=s.logprobs,
                finish_reason=openai_finish_reason(s.finish_reason),
            )
