"""`graph_of_thoughts`: solutions combined and refined, not only sampled (Besta et al. 2023).

Best-of-N throws away everything but the winner; Graph of Thoughts lets good solutions feed each
other. After N solutions are sampled and scored, each round aggregates the best few into merged
solutions (the model asked to combine their best parts), refines every merged solution once (the
model asked to improve it), scores the new ones and keeps the best N as the next round's pool.
Every operation is one batched engine call and every round one verifier call; the graph of
operations, with each solution's parents, is returned in the trace.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from ponder.core.answers import extract_answer
from ponder.core.engine import GeneratedSequence, SamplingOptions
from ponder.core.prompting import Numbered, Prompt
from ponder.verifiers.base import StepScore

from .base import RankedCandidate, Strategy, StrategyParams, StrategyResult
from .context import StrategyContext
from .progress import best_score
from .search import best_first

__all__ = [
    "AGGREGATE_PROMPT",
    "IMPROVE_PROMPT",
    "GraphOfThoughts",
    "GraphOfThoughtsParams",
]

AGGREGATE_PROMPT = (
    "Question:\n{question}\n\nHere are {count} solutions to this question:\n\n{solutions}\n\n"
    "Combine the best parts of these solutions into one correct solution. Fix any mistake you "
    "find, then write the combined solution in full, ending with its final answer."
)
# The paper's "refine" operation: improve a solution with no critique to go on (self_refine's
# REFINE_PROMPT rewrites an answer given feedback).
IMPROVE_PROMPT = (
    "Question:\n{question}\n\nHere is a solution to this question:\n\n{solution}\n\n"
    "Check this solution step by step and write an improved solution in full, correcting any "
    "mistake, ending with its final answer."
)

Operation = Literal["generate", "aggregate", "refine"]


class GraphOfThoughtsParams(StrategyParams):
    verifier: str = Field("self_judge", description="Verifier that scores the solutions.")
    n: int = Field(4, ge=1, description="Solutions sampled first, and kept after each round.")
    rounds: int = Field(2, ge=1, le=8, description="Rounds of aggregation and refinement.")
    merge: int = Field(2, ge=2, le=16, description="Best solutions aggregated per round.")
    aggregations: int = Field(2, ge=1, le=16, description="Merged solutions sampled per round.")

    @model_validator(mode="after")
    def _merge_fits(self) -> GraphOfThoughtsParams:
        if self.merge > self.n:
            raise ValueError(f"merge={self.merge} solutions cannot come from a pool of n={self.n}")
        return self

    def candidates(self) -> int:
        # Every solution is a complete answer returned as a candidate: the first n, then per
        # round each merged solution and its refinement.
        return self.n + 2 * self.rounds * self.aggregations

    def verifier_names(self) -> dict[str, str]:
        return {"tts.verifier": self.verifier}


@dataclass(eq=False)
class _Solution:
    """A node of the graph: a complete solution, the operation that made it and its inputs."""

    id: int
    sequence: GeneratedSequence
    operation: Operation
    round: int
    parents: tuple[int, ...] = ()
    score: float | None = None
    steps: tuple[StepScore, ...] | None = None
    notes: dict[str, Any] = field(default_factory=dict)

    def trace(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "operation": self.operation,
            "round": self.round,
            "parents": list(self.parents),
            "tokens": self.sequence.num_tokens,
            "score": self.score,
            **self.notes,
        }


class GraphOfThoughts(Strategy):
    name: ClassVar[str] = "graph_of_thoughts"
    description: ClassVar[str] = (
        "N solutions, then rounds that merge the best and refine the merge; the best by a verifier."
    )
    Params: ClassVar[type[StrategyParams]] = GraphOfThoughtsParams
    params: GraphOfThoughtsParams

    def planned_tokens(self, max_tokens: int, choices: int) -> int:
        """Worst case: every solution (n sampled, then per round `aggregations` merged and as many
        refined) runs to `max_tokens`."""
        return max(self.params.candidates(), choices) * max_tokens

    async def run(self, ctx: StrategyContext) -> StrategyResult:
        p = self.params
        verifier = ctx.verifier(p.verifier)
        options = ctx.options_for(verifier)
        graph: list[_Solution] = []

        def add(
            sequences: Sequence[GeneratedSequence],
            operation: Operation,
            round_: int,
            parents: Sequence[tuple[int, ...]],
        ) -> list[_Solution]:
            made = [
                _Solution(len(graph) + i, s, operation, round_, tuple(ps))
                for i, (s, ps) in enumerate(zip(sequences, parents, strict=True))
            ]
            graph.extend(made)
            return made

        async def score(solutions: list[_Solution]) -> None:
            scored = await ctx.score(verifier, [s.sequence for s in solutions])
            for solution, value, steps in zip(solutions, scored.values, scored.steps, strict=True):
                solution.score = value
                solution.steps = steps

        generations = await ctx.sample(p.n, options=options)
        sampled = [s for g in generations for s in g.sequences]
        pool = add(sampled, "generate", 0, [()] * len(sampled))
        await score(pool)
        pool = best_first(pool)
        rounds = 0

        def report(phase: str) -> None:
            best = best_score(s.score for s in graph)
            ctx.report_progress(self.name, phase, rounds + 1, p.rounds + 1, len(pool), best)

        report("generate")
        while rounds < p.rounds and len(pool) >= p.merge and ctx.budget.exhausted is None:
            rounds += 1
            chosen = pool[: p.merge]
            merged = await self._aggregate(ctx, options, chosen)
            aggregated = add(
                merged, "aggregate", rounds, [tuple(s.id for s in chosen)] * len(merged)
            )
            refined_sequences = await self._refine(ctx, options, aggregated)
            refined = add(
                refined_sequences,
                "refine",
                rounds,
                [(s.id,) for s in aggregated[: len(refined_sequences)]],
            )
            new = aggregated + refined
            if not new:
                break
            await score(new)
            pool = best_first(pool + new)[: p.n]
            report("round")
        for solution in pool:
            solution.notes["kept"] = True

        details: dict[str, Any] = {"verifier": verifier.name, "rounds": rounds}
        if p.return_trace:
            details["graph"] = [s.trace() for s in graph]
        candidates = [
            RankedCandidate(
                s.sequence,
                score=s.score,
                answer=extract_answer(s.sequence.text),
                step_scores=s.steps,
            )
            for s in graph
        ]
        return StrategyResult(candidates, [s.id for s in best_first(graph)], details)

    async def _aggregate(
        self, ctx: StrategyContext, options: SamplingOptions, chosen: Sequence[_Solution]
    ) -> list[GeneratedSequence]:
        """`aggregations` merged solutions of `chosen` (best first), in one engine call."""
        solutions = Numbered("Solution", tuple(s.sequence.text for s in chosen))
        fields = {"question": ctx.question.text, "count": str(len(chosen))}
        prompt = Prompt(AGGREGATE_PROMPT, fields, {"solutions": solutions})
        return await _replies(ctx, [prompt], options, self.params.aggregations)

    async def _refine(
        self, ctx: StrategyContext, options: SamplingOptions, solutions: Sequence[_Solution]
    ) -> list[GeneratedSequence]:
        """One improved version of each solution, all in one engine call."""
        if not solutions:
            return []
        fields = {"question": ctx.question.text}
        prompts = [Prompt(IMPROVE_PROMPT, fields, {"solution": s.sequence.text}) for s in solutions]
        return await _replies(ctx, prompts, options, 1)


async def _replies(
    ctx: StrategyContext, prompts: Sequence[Prompt], options: SamplingOptions, n: int
) -> list[GeneratedSequence]:
    """`n` solutions per prompt; none when a prompt leaves no room to answer (or no budget)."""
    generations = await ctx.sample_replies(prompts, n, options) or []
    return [s for g in generations for s in g.sequences]
