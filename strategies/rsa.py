"""`rsa`: recursive self-aggregation, a population of solutions improved by aggregating subsets.

Venkatraman et al. 2025 ("Recursive Self-Aggregation Unlocks Deep Thinking in Large Language
Models") keep a population of N complete solutions. Each of T rounds makes N new solutions, each
by showing the model a random subset of K solutions of the current population and asking it to
aggregate them into one improved solution (with K = 1 the operation is a plain refinement); the
new solutions replace the population. Correct reasoning that appears in some solutions spreads
through the population while no verifier is needed; the answer is the majority of the last
population, or with a verifier, its score-weighted vote. When the budget cuts a round short, the
vote runs over the previous population and the new solutions that finished.

The aggregation is the prompted operation Graph of Thoughts uses (`core/prompting.py`, sampled
through `StrategyContext.sample_replies`); every round is one batched engine call.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import Field, model_validator

from ponder.core.answers import extract_answer, tally
from ponder.core.engine import GeneratedSequence
from ponder.core.prompting import Numbered, Prompt

from .base import RankedCandidate, Strategy, StrategyParams, StrategyResult
from .context import StrategyContext
from .graph_of_thoughts import AGGREGATE_PROMPT, IMPROVE_PROMPT

__all__ = ["RecursiveSelfAggregation", "RecursiveSelfAggregationParams"]


class RecursiveSelfAggregationParams(StrategyParams):
    population: int = Field(4, ge=1, le=16, description="Solutions kept in every round (N).")
    subset: int = Field(2, ge=1, le=8, description="Solutions aggregated into each new one (K).")
    rounds: int = Field(2, ge=1, le=8, description="Rounds of aggregation (T).")
    verifier: str | None = Field(
        None, description="Verifier whose scores weight the final vote; none: majority vote."
    )

    @model_validator(mode="after")
    def _subset_fits(self) -> RecursiveSelfAggregationParams:
        if self.subset > self.population:
            raise ValueError(
                f"subset={self.subset} solutions cannot come from a population of {self.population}"
            )
        return self

    def candidates(self) -> int:
        # Every solution of every population is a complete answer returned as a candidate.
        return self.population * (self.rounds + 1)

    def verifier_names(self) -> dict[str, str]:
        return {"tts.verifier": self.verifier} if self.verifier else {}


@dataclass(frozen=True)
class _Solution:
    id: int
    sequence: GeneratedSequence
    round: int
    parents: tuple[int, ...]

    def trace(self, score: float | None) -> dict[str, Any]:
        return {
            "id": self.id,
            "operation": "aggregate" if self.parents else "generate",
            "round": self.round,
            "parents": list(self.parents),
            "tokens": self.sequence.num_tokens,
            "score": score,
        }


class RecursiveSelfAggregation(Strategy):
    name: ClassVar[str] = "rsa"
    description: ClassVar[str] = (
        "Recursive self-aggregation: a population of N solutions, each round rebuilt from random "
        "subsets of K aggregated by the model; the majority (or verifier-weighted) answer."
    )
    Params: ClassVar[type[StrategyParams]] = RecursiveSelfAggregationParams
    params: RecursiveSelfAggregationParams

    def planned_tokens(self, max_tokens: int, choices: int) -> int:
        """Worst case: every solution of every round runs to `max_tokens`."""
        return max(self.params.candidates(), choices) * max_tokens

    async def run(self, ctx: StrategyContext) -> StrategyResult:
        p = self.params
        verifier = ctx.verifier(p.verifier) if p.verifier else None
        options = ctx.options_for(verifier) if verifier else ctx.options
        # Seeded requests choose the same subsets; others differ from call to call.
        rng = random.Random(options.seed)
        generations = await ctx.sample(p.population, options=options)
        sampled = [s for g in generations for s in g.sequences]
        solutions = [_Solution(i, s, 0, ()) for i, s in enumerate(sampled)]
        population = list(solutions)
        rounds = 0
        while rounds < p.rounds and population and ctx.budget.exhausted is None:
            subsets = [
                tuple(rng.sample(range(len(population)), min(p.subset, len(population))))
                for _ in range(p.population)
            ]
            prompts = [_prompt(ctx, [population[i] for i in subset]) for subset in subsets]
            replies = await ctx.sample_replies(prompts, 1, options) or []
            made = [s for g in replies for s in g.sequences]
            if not made:
                break
            rounds += 1
            new = [
                _Solution(len(solutions) + k, s, rounds, tuple(population[i].id for i in subset))
                for k, (s, subset) in enumerate(zip(made, subsets, strict=False))
            ]
            solutions.extend(new)
            if ctx.budget.exhausted is not None:
                # The budget may have cut this round's solutions short: those that finished
                # join the previous population instead of replacing it.
                population += [s for s in new if s.sequence.finish_reason == "stop"]
                break
            population = new

        answers = [extract_answer(s.sequence.text) for s in solutions]
        last = [s.id for s in population]
        scores: list[float | None] = [None] * len(solutions)
        if verifier is not None and last:
            verdicts = await ctx.score(verifier, [solutions[i].sequence for i in last])
            for i, value in zip(last, verdicts.values, strict=True):
                scores[i] = value
        weights = None if verifier is None else [scores[i] or 0.0 for i in last]
        votes = await asyncio.to_thread(tally, [answers[i] for i in last], weights)
        # The last population by its answer's weight (best score first within an answer), then
        # the earlier solutions, newest first: they are what `choices` beyond it fall back on.
        by_score = sorted(range(len(last)), key=lambda k: -(scores[last[k]] or 0.0))
        ranking = [last[k] for k in votes.rank(by_score)]
        kept = set(last)
        ranking += [s.id for s in reversed(solutions) if s.id not in kept]
        details: dict[str, Any] = {
            "rounds": rounds,
            "votes": votes.summary(),
            "verifier": verifier.name if verifier else None,
        }
        if p.return_trace:
            details["graph"] = [s.trace(scores[s.id]) for s in solutions]
        candidates = [
            RankedCandidate(s.sequence, score=scores[s.id], answer=answers[s.id]) for s in solutions
        ]
        return StrategyResult(candidates, ranking, details)


def _prompt(ctx: StrategyContext, chosen: Sequence[_Solution]) -> Prompt:
    """The aggregation of `chosen` into one solution; a lone solution is refined."""
    fields = {"question": ctx.question.text}
    if len(chosen) == 1:
        return Prompt(IMPROVE_PROMPT, fields, {"solution": chosen[0].sequence.text})
    solutions = Numbered("Solution", tuple(s.sequence.text for s in chosen))
    return Prompt(AGGREGATE_PROMPT, {**fields, "count": str(len(chosen))}, {"solutions": solutions})
