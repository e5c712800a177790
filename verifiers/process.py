"""The shared half of every process verifier: steps in, cached step scores, one aggregated score.

A family only says how to score the steps of a batch of answers (`score_steps`); splitting,
de-duplication, the step-score cache and aggregation are done here once for all of them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from .base import (
    DEFAULT_SCORING,
    Aggregation,
    Candidate,
    Question,
    Scores,
    ScoringOptions,
    StepScore,
    VerifierKind,
)
from .steps import StepScoreCache, aggregate, split_steps

__all__ = ["ProcessVerifier", "StepBatch"]


@dataclass(frozen=True)
class StepBatch:
    """Step scores for a batch of answers, one list per answer, and the tokens it took."""

    scores: list[list[StepScore]]
    tokens: int = 0


class ProcessVerifier(ABC):
    kind: ClassVar[VerifierKind] = "process"
    needs_logprobs: ClassVar[bool] = False
    default_aggregation: ClassVar[Aggregation] = "min"
    family: ClassVar[str]
    description: ClassVar[str]

    def __init__(
        self, name: str, *, aggregation: Aggregation | None = None, cache_entries: int = 100_000
    ) -> None:
        self.name = name
        self.aggregation: Aggregation = aggregation or self.default_aggregation
        self.cache = StepScoreCache(cache_entries)

    @property
    def model(self) -> str | None:
        return None

    def units(self, question: Question, steps: list[str]) -> list[str]:
        """What gets a score: the steps, unless a family scores more (see `arithmetic`)."""
        return steps

    @abstractmethod
    async def score_steps(
        self,
        question: Question,
        answers: Sequence[Sequence[str]],
        *,
        request_id: str,
        options: ScoringOptions,
    ) -> StepBatch:
        """Score every step of every answer, in as few batched calls as the family allows."""

    async def score(
        self,
        question: Question,
        candidates: Sequence[Candidate],
        *,
        request_id: str,
        options: ScoringOptions = DEFAULT_SCORING,
    ) -> Scores:
        answers = [
            self.units(question, split_steps(c.text, options.step_delimiter)) for c in candidates
        ]
        found = [self.cache.lookup(question.text, a) for a in answers]
        hits = sum(len(f) for f in found if f is not None)
        # Identical answers are scored once.
        todo = list(
            dict.fromkeys(tuple(a) for a, f in zip(answers, found, strict=True) if f is None)
        )
        tokens = 0
        if todo:
            batch = await self.score_steps(
                question, [list(a) for a in todo], request_id=request_id, options=options
            )
            tokens = batch.tokens
            for units, scores in zip(todo, batch.scores, strict=True):
                self.cache.store(question.text, units, scores)
            computed = dict(zip(todo, batch.scores, strict=True))
            found = [
                f if f is not None else computed[tuple(a)]
                for a, f in zip(answers, found, strict=True)
            ]
        steps = tuple(tuple(f or ()) for f in found)
        how = options.aggregation or self.aggregation
        values = tuple(aggregate(s, how) if s else 0.0 for s in steps)
        return Scores(values, tokens=tokens, steps=steps, cache_hits=hits)
