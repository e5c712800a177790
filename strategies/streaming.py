"""Token streaming: what a strategy offers when it can stream tokens as the engine makes them.

Most strategies only know their answer when they end, so the server streams the chosen answer
after a search. A strategy that streams tokens live (plain decoding) implements `TokenStreaming`,
and the server checks for it with `isinstance`, so no strategy is singled out by name or class.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol, runtime_checkable

from ponder.core.engine import StreamDelta

from .context import StrategyContext

__all__ = ["TokenStreaming"]


@runtime_checkable
class TokenStreaming(Protocol):
    """A strategy whose tokens can be sent to the client as they are generated."""

    def stream(self, ctx: StrategyContext) -> AsyncIterator[StreamDelta]:
        """Yield each sequence's new tokens as the engine produces them, counting them in
        `ctx.usage` and `ctx.budget`; the sequences are `ctx.choices` samples of the prompt."""
        ...
