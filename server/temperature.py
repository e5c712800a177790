"""What `temperature: 0` means when a request needs more than one sample.

vLLM samples greedily at temperature 0 (it raises any temperature below 0.01 to 0.01) and then
refuses `n > 1` ("n must be 1 when using greedy sampling"): greedy samples of one prompt would all
be the same. Temperature 0 is many
applications' default, so Ponder decides before the engine is asked:

- plain decoding (`none`) with `n > 1` at temperature 0 is a 400 naming `temperature`, as vLLM's
  own server answers;
- a strategy whose samples must differ (best-of-N, voting, tree searches, MCTS, ...) samples at
  the server's exploration temperature instead, and the response's `tts` block says so;
- everything that draws one sample at a time (plain decoding with `n: 1`, token-level beam
  search, a single self-refine chain) stays greedy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ponder.strategies.base import Strategy

from .errors import APIError

__all__ = ["SamplingTemperature", "sampling_temperature"]


@dataclass(frozen=True)
class SamplingTemperature:
    """The temperature the strategy samples at, and whether it replaced the request's."""

    value: float
    replaced: bool = False

    def report(self) -> dict[str, Any]:
        """What the response's `tts` block says about it (nothing when the request's held)."""
        if not self.replaced:
            return {}
        return {"temperature": self.value, "temperature_replaced": True}


def sampling_temperature(
    strategy: Strategy, requested: float, choices: int, exploration: float
) -> SamplingTemperature:
    """The temperature to sample at, or a 400 when the request cannot be served greedily."""
    if requested > 0:
        return SamplingTemperature(requested)
    if strategy.choices_are_samples:
        if choices > 1:
            raise APIError(
                400,
                f"n={choices} samples at temperature 0 would all be the same: greedy decoding "
                "returns one; raise temperature or set n to 1",
                param="temperature",
            )
        return SamplingTemperature(requested)
    if strategy.needs_diverse_samples():
        return SamplingTemperature(exploration, replaced=True)
    return SamplingTemperature(requested)
