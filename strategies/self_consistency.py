"""`self_consistency`: sample N answers and return the majority (Wang et al. 2022).

Final answers are extracted and normalised, equivalent ones counted together (exactly for
numbers, with math-verify for expressions), and ties go to the answer seen first. The adaptive
variant samples in rounds and stops once one answer holds a supermajority, which spends far fewer
tokens on easy questions (its_hub, Aggarwal et al. 2023).
"""

from __future__ import annotations

import asyncio
from typing import ClassVar

from pydantic import Field, model_validator

from ponder.core.answers import Tally, extract_answer, tally
from ponder.core.engine import GeneratedSequence

from .base import RankedCandidate, Strategy, StrategyParams, StrategyResult
from .context import StrategyContext

__all__ = ["SelfConsistency", "SelfConsistencyParams"]

# Rounds after the first shift the seed so a seeded request does not redraw the same samples.
_ROUND_SEED_STRIDE = 1_000_003


class SelfConsistencyParams(StrategyParams):
    n: int = Field(8, ge=1, description="Most samples drawn.")
    adaptive: bool = Field(False, description="Sample in rounds; stop at a supermajority.")
    round_size: int = Field(4, ge=1, description="Samples per round when adaptive.")
    min_samples: int = Field(4, ge=1, description="Samples drawn before an early stop is allowed.")
    threshold: float = Field(
        0.75, gt=0.5, le=1.0, description="Share of votes one answer needs to stop early."
    )

    @model_validator(mode="after")
    def _rounds_fit(self) -> SelfConsistencyParams:
        self.min_samples = min(self.min_samples, self.n)
        return self

    def candidates(self) -> int:
        return self.n


class SelfConsistency(Strategy):
    name: ClassVar[str] = "self_consistency"
    samples_whole_answers: ClassVar[bool] = True
    description: ClassVar[str] = "N samples, majority vote on the final answer; can stop early."
    Params: ClassVar[type[StrategyParams]] = SelfConsistencyParams
    params: SelfConsistencyParams

    def _settled(self, votes: Tally, drawn: int) -> bool:
        if drawn < self.params.min_samples or votes.winner is None:
            return False
        return votes.totals[votes.winner] / drawn >= self.params.threshold

    async def run(self, ctx: StrategyContext) -> StrategyResult:
        p = self.params
        sequences: list[GeneratedSequence] = []
        answers: list[str | None] = []
        votes = tally([])
        rounds = 0
        stopped_early = False
        while len(sequences) < p.n:
            size = min(p.round_size, p.n - len(sequences)) if p.adaptive else p.n
            options = ctx.options
            if options.seed is not None and rounds:
                options = options.replace(seed=options.seed + rounds * _ROUND_SEED_STRIDE)
            generations = await ctx.sample(size, options=options)
            if not generations:
                break
            rounds += 1
            new = generations[0].sequences
            sequences.extend(new)
            answers.extend(extract_answer(s.text) for s in new)
            votes = await asyncio.to_thread(tally, answers)
            if ctx.budget.exhausted is not None:
                break
            if p.adaptive and len(sequences) < p.n and self._settled(votes, len(sequences)):
                stopped_early = True
                break
        candidates = [
            RankedCandidate(s, score=votes.share(i), answer=answers[i])
            for i, s in enumerate(sequences)
        ]
        details = {
            "votes": votes.summary(),
            "rounds": rounds,
            "stopped_early": stopped_early,
        }
        return StrategyResult(candidates, votes.rank_representatives(), details)
