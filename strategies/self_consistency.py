"""`self_consistency`: sample N answers and return the majority (Wang et al. 2022).

Final answers are extracted and normalised, equivalent ones counted together (exactly for
numbers, with math-verify for expressions), and ties go to the answer seen first.

The adaptive variant starts all N samples at once, as the fixed one does, so it never takes
longer, and stops the samples still running as soon as the vote is decided: when those left
cannot change the winner, or when the posterior probability that the leading answer is the
model's most likely answer reaches `threshold`. That probability is the Beta-posterior rule of
Adaptive-Consistency (Aggarwal et al. 2023): with a uniform prior on the leader's share p of the
votes it and the runner-up get, and counts a and b, P(p > 1/2) = P(Binomial(a + b + 1, 1/2) <= a).
Only finished samples vote; stopped ones are returned in the trace without an answer.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from typing import ClassVar

from pydantic import Field, model_validator

from ponder.core.answers import exact_totals, extract_answer, tally
from ponder.core.engine import GeneratedSequence

from .base import RankedCandidate, Strategy, StrategyParams, StrategyResult
from .context import StrategyContext

__all__ = ["SelfConsistency", "SelfConsistencyParams", "leader_probability", "vote_decided"]


class SelfConsistencyParams(StrategyParams):
    n: int = Field(8, ge=1, description="Most samples drawn.")
    adaptive: bool = Field(
        False, description="Start all samples at once; stop the rest when the vote is decided."
    )
    min_samples: int = Field(
        4, ge=1, description="Finished samples before the posterior rule may stop the rest."
    )
    threshold: float = Field(
        0.95,
        gt=0.5,
        le=1.0,
        description="Posterior probability that the leading answer is the most likely one, at "
        "which the rest are stopped (1: stop only when they cannot change the winner).",
    )

    @model_validator(mode="after")
    def _fit_n(self) -> SelfConsistencyParams:
        self.min_samples = min(self.min_samples, self.n)
        return self

    def candidates(self) -> int:
        return self.n


def leader_probability(leader: int, runner_up: int) -> float:
    """P(p > 1/2) for p ~ Beta(leader + 1, runner_up + 1): the posterior probability that the
    leading answer is more likely than the runner-up."""
    trials = leader + runner_up + 1
    return sum(math.comb(trials, k) for k in range(leader + 1)) / 2**trials


def vote_decided(
    counts: Sequence[float], *, finished: int, running: int, min_samples: int, threshold: float
) -> bool:
    """Whether the vote may stop, from its answers' counts (heaviest first): the running samples
    cannot change the winner, or enough have finished and the leader's posterior probability
    reaches `threshold`."""
    if not counts:
        return False
    leader, runner_up = int(counts[0]), int(counts[1]) if len(counts) > 1 else 0
    # Strictly more: a tie goes to the answer seen first, which may be the runner-up.
    if leader - runner_up > running:
        return True
    if finished < min_samples or threshold >= 1.0:
        return False
    return leader_probability(leader, runner_up) >= threshold


class SelfConsistency(Strategy):
    name: ClassVar[str] = "self_consistency"
    description: ClassVar[str] = "N samples, majority vote on the final answer; can stop early."
    Params: ClassVar[type[StrategyParams]] = SelfConsistencyParams
    params: SelfConsistencyParams

    async def _fixed(self, ctx: StrategyContext) -> tuple[list[GeneratedSequence], bool]:
        generations = await ctx.sample(self.params.n)
        return (list(generations[0].sequences) if generations else []), False

    async def _adaptive(self, ctx: StrategyContext) -> tuple[list[GeneratedSequence], bool]:
        p = self.params
        answers: dict[int, str | None] = {}
        stopped_early = False
        async with ctx.watch_samples(p.n) as samples:
            async for delta in samples:
                if delta.finish_reason is None or delta.finish_reason == "abort":
                    continue
                answers[delta.index] = extract_answer(samples.text(delta.index))
                running = len(samples.running())
                decided = vote_decided(
                    exact_totals(list(answers.values())),
                    finished=len(answers),
                    running=running,
                    min_samples=p.min_samples,
                    threshold=p.threshold,
                )
                if running and decided:
                    stopped_early = True
                    await samples.stop()
        return list(samples.sequences()), stopped_early

    async def run(self, ctx: StrategyContext) -> StrategyResult:
        run = self._adaptive if self.params.adaptive else self._fixed
        sequences, stopped_early = await run(ctx)
        # Only the adaptive variant leaves out stopped samples; the fixed one votes with what a
        # deadline left, as it always did.
        adaptive = self.params.adaptive
        voting = [not (adaptive and s.finish_reason == "abort") for s in sequences]
        answers = [
            extract_answer(s.text) if v else None for s, v in zip(sequences, voting, strict=True)
        ]
        votes = await asyncio.to_thread(tally, answers)
        candidates = [
            RankedCandidate(s, score=votes.share(i), answer=answers[i])
            for i, s in enumerate(sequences)
        ]
        # Stopped samples come last: their text is cut short, never an answer to return.
        ranking = sorted(votes.rank_representatives(), key=lambda i: not voting[i])
        details = {
            "votes": votes.summary(),
            "stopped_early": stopped_early,
            "stopped": voting.count(False),
        }
        return StrategyResult(candidates, ranking, details)
