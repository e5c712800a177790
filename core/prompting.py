"""Fitting chat prompts into the model's context by shortening the texts they quote.

Judges, votes, merges and refinements quote answers that may be long. When the prompt does not
leave room to generate, the longest quoted texts are cut from their start: their end holds the
conclusion or the newest step, which is what the model is asked about.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from .engine import Engine

__all__ = ["ELIDED", "Build", "render_all", "render_within_context"]

# Makes the chat messages of a prompt from the texts it quotes.
Build = Callable[[list[str]], list[dict[str, Any]]]

# Marks a text cut to fit.
ELIDED = "..."
# Re-tokenising a shortened text may merge differently at the cut.
_TRIM_SLACK_TOKENS = 8


def _water_level(lengths: Sequence[int], allowed: int) -> int:
    """The largest cap L with sum(min(length, L)) <= allowed: long texts are cut first."""
    low, high = 0, max(lengths, default=0)
    while low < high:
        middle = (low + high + 1) // 2
        if sum(min(n, middle) for n in lengths) <= allowed:
            low = middle
        else:
            high = middle - 1
    return low


def render_within_context(
    engine: Engine, build: Build, texts: Sequence[str], room: int
) -> list[int]:
    """The chat `build(texts)` rendered so that `room` tokens still fit in the model's context,
    the longest texts cut from their start as far as needed (and as far as cutting can)."""
    ids = engine.render_chat(build(list(texts)))
    overflow = len(ids) - (engine.max_model_len - room)
    if overflow <= 0 or not texts:
        return ids
    encoded = [engine.encode(t) for t in texts]
    total = sum(len(e) for e in encoded)
    cap = _water_level(
        [len(e) for e in encoded], total - overflow - _TRIM_SLACK_TOKENS * len(texts)
    )
    cut = [
        t if len(e) <= cap else ELIDED + engine.decode(e[len(e) - cap :])
        for t, e in zip(texts, encoded, strict=True)
    ]
    return engine.render_chat(build(cut))


async def render_all(
    engine: Engine, prompts: Sequence[tuple[Build, Sequence[str]]], room: int
) -> list[list[int]]:
    """`render_within_context` for every (build, texts), in one worker thread: chat templates
    and tokenizers block, and these prompts quote whole answers."""
    return await asyncio.to_thread(
        lambda: [render_within_context(engine, build, texts, room) for build, texts in prompts]
    )
