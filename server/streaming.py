"""Server-sent events for both kinds of strategy.

Plain decoding streams tokens as the engine makes them. A search cannot know its answer until it
ends (or until it settles it, see `strategies/progress.py`), so while it searches it reports its
progress (`progress.py`) and keeps the connection alive, then streams the chosen answers. Either
way the stream is first a sequence of items (`stream_deltas`: answer deltas, progress reports,
keep-alives), which the chat and completion chunks here, and the Responses events of
`responses_stream.py`, put on the wire; the caller appends the usage chunk and `[DONE]`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ponder.core.engine import GeneratedSequence, StreamDelta, TokenLogprob
from ponder.core.reasoning import StreamSplitter
from ponder.strategies.base import RankedCandidate, StrategyResult
from ponder.strategies.streaming import TokenStreaming

from .progress import ProgressFeed, TTSProgress
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
    "StreamItem",
    "chosen_deltas",
    "chunk",
    "stream_chunks",
    "stream_deltas",
    "token_deltas",
    "usage_chunk",
]

KEEPALIVE = ": keep-alive\n\n"
FIRST = asyncio.FIRST_COMPLETED

# What a stream is made of before it meets a wire format: an answer's delta, a search's progress
# report, or None for a keep-alive.
StreamItem = StreamDelta | TTSProgress | None

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


def progress_chunk(prepared: PreparedRequest, progress: TTSProgress) -> str:
    """A chunk with no choices and the search's progress (the `openai` client parses it)."""
    return sse({**_envelope(prepared), "choices": [], "tts_progress": wire(progress)})


async def token_deltas(
    prepared: PreparedRequest, strategy: TokenStreaming, outcomes: list[Outcome]
) -> AsyncIterator[StreamDelta | None]:
    """A token-streaming strategy: each token as it is generated (split into thinking and
    answer when a reasoning format is set and the client wants the thinking); the finished
    sequences land in `outcomes`."""
    ctx = prepared.contexts[0]
    fmt = ctx.reasoning if prepared.include_reasoning else None
    splitters: dict[int, StreamSplitter] = {}
    texts: dict[int, list[str]] = {}
    token_ids: dict[int, list[int]] = {}
    finish: dict[int, str] = {}
    async for delta in strategy.stream(ctx):
        texts.setdefault(delta.index, []).append(delta.text)
        token_ids.setdefault(delta.index, []).extend(delta.token_ids)
        if delta.finish_reason:
            finish[delta.index] = delta.finish_reason
        if fmt is not None:
            splitter = splitters.setdefault(delta.index, StreamSplitter(fmt))
            thinking, answer = splitter.feed(delta.text, last=delta.finish_reason is not None)
            delta = dataclasses.replace(delta, text=answer, reasoning=thinking or None)
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
    progress_interval_s: float,
) -> AsyncIterator[StreamItem]:
    """A search: progress reports and keep-alives while it runs, early answers as soon as they
    are settled, then each chosen answer not sent yet as one delta.

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
            # Cleared before the checks: whatever arrives while an item is sent wakes the wait.
            feed.changed.clear()
            now = loop.time()
            if feed.has_progress and now - last_progress >= progress_interval_s:
                for progress in feed.take_progress():
                    yield progress
                last_progress = now
            for delta in _early_answers(prepared, feed, sent):
                yield delta
            if now - last_keepalive >= keepalive_s:
                yield None
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
    for progress in feed.take_progress():
        yield progress
    for delta in _early_answers(prepared, feed, sent):
        yield delta
    for p, outcome in enumerate(outcomes):
        for j, candidate in enumerate(outcome.chosen(prepared.choices)):
            index = p * prepared.choices + j
            if index in sent:
                if sent[index] != candidate.sequence:
                    logger.error("choice %d was streamed early but another was chosen", index)
                continue
            yield _whole(prepared, index, candidate.sequence)


def _early_answers(
    prepared: PreparedRequest, feed: ProgressFeed, sent: dict[int, GeneratedSequence]
) -> list[StreamDelta]:
    """The answers settled since the last call, as deltas; `sent` records them."""
    deltas = []
    for p, answer in feed.take_answers():
        index = p * prepared.choices + answer.choice
        if answer.choice >= prepared.choices or index in sent:
            continue
        sent[index] = answer.sequence
        deltas.append(_whole(prepared, index, answer.sequence))
    return deltas


def _whole(prepared: PreparedRequest, index: int, s: GeneratedSequence) -> StreamDelta:
    """One whole answer as a single delta, with its thinking when the client wants it."""
    return StreamDelta(
        index=index,
        text=s.text,
        token_ids=s.token_ids,
        logprobs=s.logprobs,
        finish_reason=s.finish_reason,
        reasoning=s.reasoning if prepared.include_reasoning else None,
    )


def stream_deltas(
    prepared: PreparedRequest,
    run: Callable[[PreparedRequest], Awaitable[list[Outcome]]],
    outcomes: list[Outcome],
    keepalive_s: float,
    progress_interval_s: float,
) -> AsyncIterator[StreamItem]:
    """What a stream sends, whatever its wire format: the answers' deltas as they come, progress
    reports, and None for a keep-alive; the outcomes land in `outcomes` once it is exhausted."""
    strategy = prepared.strategy
    # Budget forcing continues whole candidates in rounds, so a thinking cap is not streamed live.
    live = len(prepared.contexts) == 1 and prepared.contexts[0].thinking is None
    if isinstance(strategy, TokenStreaming) and live:
        return token_deltas(prepared, strategy, outcomes)
    return chosen_deltas(prepared, run, outcomes, keepalive_s, progress_interval_s)


async def stream_chunks(
    prepared: PreparedRequest, deltas: AsyncIterator[StreamItem]
) -> AsyncIterator[str]:
    """Chat and completion chunks of the stream; a chat choice opens with its role."""
    opened: set[int] = set()
    async for delta in deltas:
        if delta is None:
            yield KEEPALIVE
            continue
        if isinstance(delta, TTSProgress):
            yield progress_chunk(prepared, delta)
            continue
        if delta.index not in opened and prepared.endpoint == "chat":
            yield chunk(prepared, delta.index, role=True)
        opened.add(delta.index)
        if delta.reasoning and prepared.endpoint == "chat":
            yield chunk(prepared, delta.index, reasoning=delta.reasoning)
        yield chunk(
            prepared,
            delta.index,
            text=delta.text,
            logprobs=delta.logprobs,
            finish_reason=openai_finish_reason(delta.finish_reason),
        )
