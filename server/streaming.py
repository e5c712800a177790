"""Server-sent events for both kinds of strategy.

Plain decoding streams tokens as the engine makes them. A search cannot know its answer until it
ends (or until it settles it, see `strategies/progress.py`), so while it searches it sends
progress chunks (`progress.py`) and SSE comments as keep-alives, then streams the chosen answers.
Either way the caller appends the usage chunk and `[DONE]`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ponder.core.engine import GeneratedSequence, TokenLogprob
from ponder.strategies.base import RankedCandidate, StrategyResult
from ponder.strategies.streaming import TokenStreaming

from .progress import ProgressFeed
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
FIRST = asyncio.FIRST_COMPLETED

logger = logging.getLogger(__name__)


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


async def stream_tokens(
    prepared: PreparedRequest, strategy: TokenStreaming, outcomes: list[Outcome]
) -> AsyncIterator[str]:
    """A token-streaming strategy: each token as it is generated; the finished sequences land
    in `outcomes`."""
    ctx = prepared.contexts[0]
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
    progress_interval_s: float,
) -> AsyncIterator[str]:
    """A search: progress chunks and keep-alives while it runs, early answers as soon as they are
    settled, then the chosen answers not sent yet.

    Keep-alives keep their own period whatever else is sent; progress is sent at most every
    `progress_interval_s` (the latest of each prompt), and once more before the answers.
    """
    feed = ProgressFeed(prepared.contexts)
    task = asyncio.ensure_future(run(prepared))
    sent: dict[int, GeneratedSequence] = {}
    loop = asyncio.get_running_loop()
    last_keepalive = last_progress = loop.time()
    last_progress -= progress_interval_s  # the first report goes out at once
    try:
        while not task.done():
            # Cleared before the checks: whatever arrives while a chunk is sent wakes the wait.
            feed.changed.clear()
            now = loop.time()
            if feed.has_progress and now - last_progress >= progress_interval_s:
                for item in _progress_chunks(prepared, feed):
                    yield item
                last_progress = now
            for item in _early_answer_chunks(prepared, feed, sent):
                yield item
            if now - last_keepalive >= keepalive_s:
                yield KEEPALIVE
                last_keepalive = now
            wake = keepalive_s - (now - last_keepalive)
            if feed.has_progress:
                wake = min(wake, progress_interval_s - (now - last_progress))
            changed = asyncio.ensure_future(feed.changed.wait())
            try:
                await asyncio.wait({task, changed}, timeout=max(wake, 0.0), return_when=FIRST)
            finally:
                changed.cancel()
        outcomes.extend(task.result())
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    for item in _progress_chunks(prepared, feed):
        yield item
    for item in _early_answer_chunks(prepared, feed, sent):
        yield item
    for p, outcome in enumerate(outcomes):
        for j, candidate in enumerate(outcome.chosen(prepared.choices)):
            index = p * prepared.choices + j
            if index in sent:
                if sent[index] != candidate.sequence:
                    logger.error("choice %d was streamed early but another was chosen", index)
                continue
            for item in _answer_chunks(prepared, index, candidate.sequence):
                yield item


def _progress_chunks(prepared: PreparedRequest, feed: ProgressFeed) -> list[str]:
    return [
        sse({**_envelope(prepared), "choices": [], "tts_progress": wire(progress)})
        for progress in feed.take_progress()
    ]


def _early_answer_chunks(
    prepared: PreparedRequest, feed: ProgressFeed, sent: dict[int, GeneratedSequence]
) -> list[str]:
    """The chunks of the answers settled since the last call; `sent` records them."""
    items: list[str] = []
    for p, answer in feed.take_answers():
        index = p * prepared.choices + answer.choice
        if answer.choice >= prepared.choices or index in sent:
            continue
        sent[index] = answer.sequence
        items.extend(_answer_chunks(prepared, index, answer.sequence))
    return items


def _answer_chunks(prepared: PreparedRequest, index: int, s: GeneratedSequence) -> list[str]:
    """One whole answer: the role chunk (chat), then its text."""
    items = [chunk(prepared, index, role=True)] if prepared.endpoint == "chat" else []
    items.append(
        chunk(
            prepared,
            index,
            text=s.text,
            logprobs=s.logprobs,
            finish_reason=openai_finish_reason(s.finish_reason),
        )
    )
    return items
