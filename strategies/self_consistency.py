"""`self_consistency`: sample N answers and return the majority (Wang et al. 2022).

Final answers are extracted and normalised, equivalent ones counted together (exactly for
numbers, with math-verify for expressions), and ties go to the answer seen first. The adaptive
variant samples in rounds and stops once one answer holds a supermajority, which spends far fewer
tokens on easy questions (its_hub, Aggarwal et al. 2023).

Streamed, the (non-adaptive) vote is counted as each sample finishes, and once it is decided (the
leader has more votes than any other answer could reach with every sample still running) the
winner is announced, so the server streams it while the rest finish. The rest are left to finish
rather than aborted: the response then reports the same N samples, votes and usage as the same
request unstreamed would (a caller who wants fewer samples asks for `adaptive`); the streamed
request gains latency, not compute. The samples are then listed in the order they finished, so
the announced sample, the first of its answer to finish, is the one the vote returns.
"""

from __future__ import annotations

import asyncio
import math
from typing import ClassVar

from pydantic import Field, model_validator

from ponder.core.answers import Tally, extract_answer, tally
from ponder.core.engine import GeneratedSequence

from .base import RankedCandidate, Strategy, StrategyParams, StrategyResult
from .context import StrategyContext
from .progress import best_score

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
        if ctx.streamed and not p.adaptive and ctx.budget.deadline is None and not ctx.reusable:
            return await self._run_streamed(ctx)
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
            max_rounds = math.ceil(p.n / p.round_size) if p.adaptive else 1
            shares = (votes.share(i) for i in range(len(answers)))
            ctx.report_progress(
                self.name, "round", rounds, max_rounds, len(sequences), best_score(shares)
            )
            if ctx.budget.exhausted is not None:
                break
            if p.adaptive and len(sequences) < p.n and self._settled(votes, len(sequences)):
                stopped_early = True
                break
        return _result(sequences, answers, votes, rounds=rounds, stopped_early=stopped_early)

    async def _run_streamed(self, ctx: StrategyContext) -> StrategyResult:
        """All N samples in one engine request, counted as they finish; the winner is announced
        once the vote is decided (see the module docstring)."""
        p = self.params
        sequences: list[GeneratedSequence] = []  # in the order they finished
        answers: list[str | None] = []
        votes = tally([])
        decided = False
        async for _, sequence in ctx.sample_as_finished(p.n, ctx.options):
            sequences.append(sequence)
            answers.append(extract_answer(sequence.text))
            votes = await asyncio.to_thread(tally, answers)
            if not decided and _decided(votes, p.n - len(sequences)):
                decided = True
                ctx.announce(0, sequences[votes.rank_representatives()[0]])
            shares = (votes.share(i) for i in range(len(answers)))
            ctx.report_progress(
                self.name, "sample", len(sequences), p.n, len(sequences), best_score(shares)
            )
        return _result(
            sequences,
            answers,
            votes,
            rounds=1 if sequences else 0,
            stopped_early=False,
            decided=decided,
        )


def _decided(votes: Tally, undrawn: int) -> bool:
    """Whether the leading answer wins however the `undrawn` samples vote."""
    if votes.winner is None:
        return False
    runner_up = max((t for g, t in votes.totals.items() if g != votes.winner), default=0.0)
    return votes.totals[votes.winner] > runner_up + undrawn


def _result(
    sequences: list[GeneratedSequence],
    answers: list[str | None],
    votes: Tally,
    **details: object,
) -> StrategyResult:
    candidates = [
        RankedCandidate(s, score=votes.share(i), answer=answers[i]) for i, s in enumerate(sequences)
    ]
    summary = {"votes": votes.summary(), **details}
    return StrategyResult(candidates, votes.rank_representatives(), summary)
