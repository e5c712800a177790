"""Intervals for measured accuracies, so that a table of results says how much it can be trusted.

Evaluation sets here are small (tens to a few hundred problems), where a few points of accuracy
are noise; every accuracy Ponder reports carries its interval, and calibration uses the same
interval to decide when a difficulty bin has evidence enough to depart from the global choice.
"""

from __future__ import annotations

import math

__all__ = ["format_interval", "shrunk_rate", "wilson_interval"]

# Two-sided 95 %.
_Z95 = 1.959963984540054


def wilson_interval(successes: int, trials: int, z: float = _Z95) -> tuple[float, float]:
    """Wilson's score interval for a binomial proportion (sound at 0 and n, unlike the normal
    approximation); (0, 1) when there are no trials."""
    if trials <= 0:
        return 0.0, 1.0
    if not 0 <= successes <= trials:
        raise ValueError("successes must be between 0 and trials")
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    # At 0 and n the bound is exactly the observed rate; computed, it can miss it by a rounding.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == trials else min(1.0, centre + half)
    return low, high


def shrunk_rate(successes: int, trials: int, prior: float, strength: float) -> float:
    """The posterior mean of a rate under a Beta prior centred on `prior` worth `strength`
    pseudo-trials: a bin with few problems stays near the prior, a large one speaks for itself."""
    if trials + strength <= 0:
        return prior
    return (successes + strength * prior) / (trials + strength)


def format_interval(low: float, high: float) -> str:
    return f"{low:.0%}-{high:.0%}"
