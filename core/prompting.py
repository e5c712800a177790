"""Prompts that restate a question and quote texts, fitted into the model's context.

Judges, votes, merges, critiques and refinements are one operation: fill a template with the
question and the texts it quotes (answers, steps, critiques), put it after the conversation it
belongs to, render it, and sample. This module is the rendering half (`Prompt`,
`render_prompts`), shared by verifiers and strategies; strategies sample through their context.

Quoted answers may be long. When the prompt does not leave room to generate, the longest quoted
texts are cut from their start: their end holds the conclusion or the newest step, which is what
the model is asked about.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .engine import Engine

__all__ = ["ELIDED", "Build", "Numbered", "Prompt", "render_prompts", "render_within_context"]

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


@dataclass(frozen=True)
class Numbered:
    """Texts quoted one after another, each under "{label} {i}:" (the choices of a vote, say)."""

    label: str
    texts: tuple[str, ...]

    def join(self, texts: Sequence[str]) -> str:
        return "\n\n".join(f"{self.label} {i}:\n{t}" for i, t in enumerate(texts, 1))


@dataclass(frozen=True)
class Prompt:
    """One user message: `template` filled with `fields` and with the texts it quotes (`quotes`,
    by field), which `render_prompts` may cut from their start to fit the context."""

    template: str
    fields: Mapping[str, str]
    quotes: Mapping[str, str | Numbered]

    def texts(self) -> list[str]:
        """The quoted texts, in field order: what fitting may cut."""
        texts: list[str] = []
        for quote in self.quotes.values():
            texts.extend(quote.texts if isinstance(quote, Numbered) else (quote,))
        return texts

    def message(self, texts: Sequence[str]) -> dict[str, Any]:
        """The user message with `texts` (as cut) in place of the quoted ones."""
        remaining = iter(texts)
        quoted = {
            name: quote.join([next(remaining) for _ in quote.texts])
            if isinstance(quote, Numbered)
            else next(remaining)
            for name, quote in self.quotes.items()
        }
        return {"role": "user", "content": self.template.format(**self.fields, **quoted)}


async def render_prompts(
    engine: Engine,
    prompts: Sequence[Prompt],
    room: int,
    *,
    head: Sequence[dict[str, Any]] = (),
) -> list[list[int]]:
    """Each prompt as token ids after the messages `head` (the conversation a restated question
    comes from: a system prompt, earlier turns), cut to leave `room` tokens to generate.

    Rendered in one worker thread: chat templates and tokenizers block, and these prompts quote
    whole answers.
    """

    def render(prompt: Prompt) -> list[int]:
        def build(texts: list[str]) -> list[dict[str, Any]]:
            return [*head, prompt.message(texts)]

        return render_within_context(engine, build, prompt.texts(), room)

    return await asyncio.to_thread(lambda: [render(p) for p in prompts])
