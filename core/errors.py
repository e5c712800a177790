"""The error every layer may raise for a request that asks for something it cannot do.

Strategies, verifiers and the core raise it; the server turns it into an OpenAI-shaped 400 that
names the offending parameter. It lives here, at the bottom, so that no layer has to import the
one above it to say "the client's input is wrong".
"""

from __future__ import annotations

__all__ = ["StrategyInputError"]


class StrategyInputError(ValueError):
    """The request asks for something that cannot be done; becomes a 400 naming `param`."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param
