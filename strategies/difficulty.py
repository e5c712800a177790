"""Difficulty estimators: a number in [0, 1] read off a probe's samples, 0 easy and 1 hard.

The probe is a few full samples of the request. Estimators only read it, so they cost nothing on
top of the probe, and the probe's samples are reused by whatever strategy the estimate selects.
Adding an estimator is a function and one line in `ESTIMATORS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ponder.core.answers import Tally
from ponder.core.engine import GeneratedSequence
from ponder.core.errors import StrategyInputError

__all__ = [
    "ESTIMATORS",
    "Estimator",
    "Probe",
    "agreement",
    "estimator",
    "verifier_best",
    "verifier_score",
]


@dataclass(frozen=True)
class Probe:
    """The probe's samples, their final answers' votes and, if a verifier was named, its scores."""

    sequences: tuple[GeneratedSequence, ...]
    votes: Tally
    scores: tuple[float | None, ...] | None = None


Estimator = Callable[[Probe], float]


def agreement(probe: Probe) -> float:
    """One minus the majority answer's share: all agree -> 0, no answer repeats -> near 1.

    Samples without a final answer count against agreement; Snell et al. bin by a similar
    consistency signal when no reward model is at hand.
    """
    votes = probe.votes
    if not probe.sequences or votes.winner is None:
        return 1.0
    return 1.0 - votes.totals[votes.winner] / len(probe.sequences)


def verifier_score(probe: Probe) -> float:
    """One minus the verifier's mean score over the probe (unscored samples count as 0)."""
    if not probe.scores:
        return 1.0
    return 1.0 - sum(s or 0.0 for s in probe.scores) / len(probe.scores)


def verifier_best(probe: Probe) -> float:
    """One minus the best verifier score in the probe.

    With a verifier that nearly knows the answer (the arithmetic checker), a question is easy
    exactly when some probe sample already scores high, since best-of-N then only has to pick
    it; the mean score (`verifier`) instead calls a question hard when most samples are wrong
    even though one is right. Unscored samples count as 0.
    """
    if not probe.scores:
        return 1.0
    return 1.0 - max(s or 0.0 for s in probe.scores)


ESTIMATORS: dict[str, Estimator] = {
    "agreement": agreement,
    "verifier": verifier_score,
    "verifier_best": verifier_best,
}


def estimator(name: str) -> Estimator:
    try:
        return ESTIMATORS[name]
    except KeyError:
        known = ", ".join(sorted(ESTIMATORS))
        raise StrategyInputError(
            f"unknown difficulty estimator {name!r}; known: {known}", "tts.estimator"
        ) from None
