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

Streamed, the fixed vote is counted as each sample finishes, and once it is decided (the leader
has more votes than any other answer could reach with every sample still running) the winner is
announced, so the server streams it while the rest finish. The rest are left to finish rather
than stopped: the response then reports the same N samples, votes and usage as the same request
unstreamed would (a caller who wants fewer samples asks for `adaptive`); the streamed request
gains latency, not compute. The samples are then listed in the order they finished, so the
announced sample, the first of its answer to finish, is the one the vote returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Sequence
from typing import ClassVar

from pydantic import Field, model_validator

from ponder.core.answers import Tally, exact_totals, extract_answer, tally
from ponder.core.engine import GeneratedSequence

from .base import RankedCandidate, Strategy, StrategyParams, StrategyResult
from .context import StrategyContext
from .progress import best_score

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
    samples_whole_answers: ClassVar[bool] = True
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
                counts = exact_totals(list(answers.values()))
                ctx.report_progress(
                    self.name,
                    "sample",
                    len(answers),
                    p.n,
                    running + len(answers),
                    counts[0] / len(answers) if counts else None,
                )
                decided = vote_decided(
                    counts,
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
        p = self.params
        # Budget forcing continues whole candidates in rounds (`ctx.sample`), so a thinking cap
        # takes the batched path: samples can then be neither stopped nor counted one by one.
        forced = ctx.thinking is not None
        adaptive = p.adaptive and not forced
        if adaptive:
            sequences, stopped_early = await self._adaptive(ctx)
            sequences = [ctx.split_one(s) for s in sequences]
        elif (
            ctx.streamed
            and ctx.engine.streams_votes
            and ctx.budget.deadline is None
            and not ctx.reusable
            and not forced
        ):
            return await self._run_streamed(ctx)
        else:
            sequences, stopped_early = await self._fixed(ctx)
        # Only the adaptive variant leaves out stopped samples; the fixed one votes with what a
        # deadline left, as it always did.
        voting = [not (adaptive and s.finish_reason == "abort") for s in sequences]
        answers = [
            extract_answer(s.text) if v else None for s, v in zip(sequences, voting, strict=True)
        ]
        votes = await asyncio.to_thread(tally, answers)
        if not adaptive:
            shares = (votes.share(i) for i in range(len(answers)))
            ctx.report_progress(self.name, "round", 1, 1, len(sequences), best_score(shares))
        # Stopped samples come last: their text is cut short, never an answer to return.
        ranking = sorted(votes.rank_representatives(), key=lambda i: not voting[i])
        return _result(
            sequences,
            answers,
            votes,
            ranking,
            stopped_early=stopped_early,
            stopped=voting.count(False),
        )

    async def _run_streamed(self, ctx: StrategyContext) -> StrategyResult:
        """All N samples in one engine request, counted as they finish; the winner is announced
        once the vote is decided (see the module docstring)."""
        p = self.params
        sequences: list[GeneratedSequence] = []  # in the order they finished
        answers: list[str | None] = []
        votes = tally([])
        decided = False
        samples = ctx.sample_as_finished(p.n, ctx.options)
        # Closed when this run is cancelled between samples, so the engine stream is aborted now
        # rather than when the generator is collected.
        async with contextlib.aclosing(samples):
            async for _, sequence in samples:
                sequences.append(sequence)
                answers.append(extract_answer(sequence.text))
                votes = await asyncio.to_thread(tally, answers)
                counts = sorted(votes.totals.values(), reverse=True)
                running = p.n - len(sequences)
                if not decided and vote_decided(
                    counts, finished=len(sequences), running=running, min_samples=p.n, threshold=1.0
                ):
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
            votes.rank_representatives(),
            stopped_early=False,
            stopped=0,
            decided=decided,
        )


def _result(
    sequences: list[GeneratedSequence],
    answers: list[str | None],
    votes: Tally,
    ranking: list[int],
    **details: object,
) -> StrategyResult:
    candidates = [
        RankedCandidate(s, score=votes.share(i), answer=answers[i]) for i, s in enumerate(sequences)
    ]
    return StrategyResult(candidates, ranking, {"votes": votes.summary(), **details})
