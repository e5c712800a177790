"""Steps: how an answer is cut into steps, how step scores become one score, and their cache.

A step is the text between step delimiters (a blank line by default). Process verifiers score each
step given the question and the steps before it, so a step's score depends on its whole prefix;
the cache keys scores by that prefix, and a search that extends a partial solution never pays
twice for the steps it already had.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence

from .base import Aggregation, StepScore

__all__ = ["NEUTRAL_SCORE", "StepScoreCache", "aggregate", "split_steps"]

# The score of an answer none of whose steps could be judged.
NEUTRAL_SCORE = 0.5


def split_steps(text: str, delimiter: str = "\n\n") -> list[str]:
    """The non-empty steps of `text`, without their delimiters and surrounding whitespace."""
    parts = text.split(delimiter) if delimiter else [text]
    return [p.strip() for p in parts if p.strip()]


def aggregate(scores: Sequence[StepScore], how: Aggregation) -> float:
    """One score from step scores; unjudged (None) steps are left out."""
    judged = [s for s in scores if s is not None]
    if not judged:
        return NEUTRAL_SCORE
    if how == "min":
        return min(judged)
    if how == "last":
        return judged[-1]
    if how == "prod":
        return math.prod(judged)
    return sum(judged) / len(judged)


class StepScoreCache:
    """Least-recently-used step scores keyed by (question, steps up to and including the step)."""

    def __init__(self, max_entries: int = 100_000) -> None:
        self._entries: OrderedDict[tuple[str, tuple[str, ...]], StepScore] = OrderedDict()
        self._max_entries = max_entries

    def lookup(self, question: str, steps: Sequence[str]) -> list[StepScore]:
        """The scores of the longest cached prefix of this answer (all of them if all cached)."""
        found = []
        for k in range(len(steps)):
            key = (question, tuple(steps[: k + 1]))
            if key not in self._entries:
                break
            self._entries.move_to_end(key)
            found.append(self._entries[key])
        return found

    def store(self, question: str, steps: Sequence[str], scores: Sequence[StepScore]) -> None:
        for k, score in enumerate(scores):
            self._entries[(question, tuple(steps[: k + 1]))] = score
            self._entries.move_to_end((question, tuple(steps[: k + 1])))
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
