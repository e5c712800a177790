"""Tokenising a request's prompts: bounded, and off the event loop.

Tokenising megabytes of text takes seconds of CPU. A prompt that surely cannot fit the context
(more characters than the context's tokens can cover) is refused before any of that work; the
rest is tokenised in a worker thread, which the vLLM engine's tokenizer leaves the GIL to, so
other requests keep being served meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from ponder.core.engine import Engine

from .errors import APIError

__all__ = ["tokenize_chat", "tokenize_text"]


def _refuse_surely_too_long(engine: Engine, chars: int, param: str) -> None:
    most = engine.max_model_len * engine.max_token_chars
    if chars > most:
        raise APIError(
            400,
            f"the prompt has {chars} characters, more than this model's context of "
            f"{engine.max_model_len} tokens can hold",
            param=param,
            code="context_length_exceeded",
        )


async def tokenize_chat(
    engine: Engine, messages: Sequence[dict[str, Any]], param: str
) -> list[int]:
    """The chat prompt's token ids, rendered with the model's template."""
    _refuse_surely_too_long(engine, sum(len(m["content"]) for m in messages), param)
    return await asyncio.to_thread(engine.render_chat, messages)


async def tokenize_text(engine: Engine, text: str, param: str) -> list[int]:
    """A completions prompt's token ids."""
    _refuse_surely_too_long(engine, len(text), param)
    return await asyncio.to_thread(engine.encode, text)
