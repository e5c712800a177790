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
    """Scores of the steps asked for (each answer's steps from its start on), and the tokens."""

    scores: list[list[StepScore]]
    tokens: int = 0


class ProcessVerifier(ABC):
    kind: ClassVar[VerifierKind] = "process"
    needs_logprobs: ClassVar[bool] = False
    top_logprobs: ClassVar[int] = 0
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
        starts: Sequence[int],
        *,
        request_id: str,
        options: ScoringOptions,
    ) -> StepBatch:
        """Score the steps of each answer from its start on (the earlier ones are cached), in as
        few batched calls as the family allows."""

    async def score(
        self,
        question: Question,
        candidates: Sequence[Candidate],
        *,
        request_id: str,
        options: ScoringOptions = DEFAULT_SCORING,
    ) -> Scores:
        answers = [
            tuple(self.units(question, split_steps(c.text, options.step_delimiter)))
            for c in candidates
        ]
        cached = {a: self.cache.lookup(question.text, a) for a in answers}
        hits = sum(len(cached[a]) for a in answers)
        # Identical answers are scored once; each from its first step not in the cache.
        todo = [a for a in cached if len(cached[a]) < len(a)]
        tokens = 0
        if todo:
            starts = [len(cached[a]) for a in todo]
            batch = await self.score_steps(
                question, todo, starts, request_id=request_id, options=options
            )
            tokens = batch.tokens
            for units, new in zip(todo, batch.scores, strict=True):
                cached[units] = [*cached[units], *new]
                self.cache.store(question.text, units, cached[units])
        steps = tuple(tuple(cached[a]) for a in answers)
        how = options.aggregation or self.aggregation
        values = tuple(
            self.aggregate(a, s, how) if s else 0.0 for a, s in zip(answers, steps, strict=True)
        )
        return Scores(values, tokens=tokens, steps=steps, cache_hits=hits)

    def aggregate(
        self, units: Sequence[str], scores: Sequence[StepScore], how: Aggregation
    ) -> float:
        """One answer's score from its units' scores (a family may weigh some units apart)."""
        return aggregate(scores, how)
