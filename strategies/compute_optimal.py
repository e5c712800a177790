"""`compute_optimal`: estimate difficulty cheaply, then spend what that difficulty is worth.

Snell et al. (2024) showed that picking the strategy and budget per question by its estimated
difficulty matches best-of-N at a fraction of the compute. Here a probe draws a few full samples,
an estimator turns them into a difficulty in [0, 1], the policy table maps that to a bin, and the
bin's best option that fits the token budget runs. The probe's samples are handed to that option,
so a self-consistency or best-of-N option that wants N samples draws only N minus the probe's.
A request may pass a difficulty hint (a number or a bin name) and skip the probe.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
from typing import Any, ClassVar

from pydantic import Field, field_validator

from ponder.core.answers import extract_answer, tally
from ponder.core.errors import StrategyInputError

from .base import RankedCandidate, Strategy, StrategyParams, StrategyResult
from .context import ReusableSamples, StrategyContext
from .difficulty import Probe, estimator
from .policy import PolicyBin, PolicyTable, default_policy, option_params
from .registry import strategy_class

__all__ = ["ComputeOptimal", "ComputeOptimalParams"]

# Request fields that carry over to the chosen option when the request sets them.
_CARRIED = ("return_trace", "step_delimiter", "aggregation", "reference")


class ComputeOptimalParams(StrategyParams):
    difficulty: float | str | None = Field(
        None,
        description="Difficulty hint, a number in [0, 1] or a bin name; skips the probe.",
    )
    probe_only: bool = Field(
        False, description="Run only the probe: answer by its vote and report the difficulty."
    )

    @field_validator("difficulty", mode="before")
    @classmethod
    def _not_a_bool(cls, value: object) -> object:
        if isinstance(value, bool):
            raise ValueError("a difficulty hint is a number in [0, 1] or a bin name")
        return value


class ComputeOptimal(Strategy):
    name: ClassVar[str] = "compute_optimal"
    description: ClassVar[str] = (
        "Estimate difficulty with a small probe, then run the policy table's choice for it."
    )
    Params: ClassVar[type[StrategyParams]] = ComputeOptimalParams
    params: ComputeOptimalParams

    def __init__(self, params: StrategyParams, policy: PolicyTable | None = None) -> None:
        super().__init__(params)
        # The server's table (see `factory.build_strategy`); the shipped one when none is given.
        self.table = policy or default_policy()
        hint = self.params.difficulty
        if isinstance(hint, str) and self.table.bin_named(hint) is None:
            known = ", ".join(b.name for b in self.table.bins)
            raise StrategyInputError(
                f"no difficulty bin named {hint!r}; the policy table has: {known}",
                "tts.difficulty",
            )
        if isinstance(hint, float | int) and not 0.0 <= hint <= 1.0:
            raise StrategyInputError("tts.difficulty must be in [0, 1]", "tts.difficulty")
        if hint is not None and self.params.probe_only:
            raise StrategyInputError(
                "tts.probe_only runs the probe, which a difficulty hint skips", "tts.difficulty"
            )

    @functools.cached_property
    def _options(self) -> list[Strategy]:
        """Every option of the table as a strategy, for the server's caps (built once)."""
        return [strategy_class(o.strategy)(option_params(o.tts)) for o in self.table.options()]

    def candidates(self) -> int:
        return max(self.table.probe.n, *(s.candidates() for s in self._options))

    def planned_tokens(self, max_tokens: int, choices: int) -> int:
        probe = self.table.probe.n * max_tokens
        if self.params.probe_only:
            return probe
        return probe + max(s.planned_tokens(max_tokens, choices) for s in self._options)

    async def run(self, ctx: StrategyContext) -> StrategyResult:
        p, table = self.params, self.table
        probe: Probe | None = None
        reusable: ReusableSamples | None = None
        if p.difficulty is None:
            reusable, probe = await self._probe(ctx)
            measured = estimator(table.probe.estimator)(probe)
            estimate: float | None = measured
            chosen_bin, source = table.bin_for(measured), "probe"
        elif isinstance(p.difficulty, str):
            estimate, source = None, "hint"
            chosen_bin = table.bin_named(p.difficulty) or table.bins[-1]
        else:
            estimate, source = float(p.difficulty), "hint"
            chosen_bin = table.bin_for(estimate)
        details: dict[str, Any] = {
            "difficulty": {"estimate": estimate, "bin": chosen_bin.name, "source": source},
            "policy": {"name": table.name, "version": table.version},
        }
        if probe is not None:
            details["probe"] = {
                "samples": len(probe.sequences),
                "tokens": sum(s.num_tokens for s in probe.sequences),
                "votes": probe.votes.summary(),
            }
        if probe is not None and p.probe_only:
            details["chosen_strategy"] = "probe"
            return self._probe_result(probe, details)
        return await self._run_option(ctx, chosen_bin, reusable, probe, details)

    async def _probe(self, ctx: StrategyContext) -> tuple[ReusableSamples, Probe]:
        spec = self.table.probe
        options = ctx.options
        if options.logprobs is None:
            # The sampled token's log-prob is nearly free and lets confidence-scored options reuse
            # the probe.
            options = options.replace(logprobs=0)
        generations = await ctx.sample(spec.n, options=options)
        sequences = generations[0].sequences if generations else ()
        votes = await asyncio.to_thread(tally, [extract_answer(s.text) for s in sequences])
        scores = None
        if spec.verifier is not None and sequences:
            scored = await ctx.score(ctx.verifier(spec.verifier, "tts.strategy"), sequences)
            scores = tuple(scored.values)
        probe = Probe(tuple(sequences), votes, scores)
        best = max(votes.totals.values(), default=0.0) / len(sequences) if sequences else None
        ctx.report_progress(self.name, "probe", 1, None, len(sequences), best)
        return ReusableSamples(options, list(sequences)), probe

    def _probe_result(self, probe: Probe, details: dict[str, Any]) -> StrategyResult:
        votes = probe.votes
        candidates = [
            RankedCandidate(s, score=votes.share(i), answer=votes.answers[i])
            for i, s in enumerate(probe.sequences)
        ]
        return StrategyResult(candidates, votes.rank_representatives(), details)

    async def _run_option(
        self,
        ctx: StrategyContext,
        chosen_bin: PolicyBin,
        reusable: ReusableSamples | None,
        probe: Probe | None,
        details: dict[str, Any],
    ) -> StrategyResult:
        p, budget = self.params, ctx.budget
        limit = budget.max_tokens or self.table.budget
        option = chosen_bin.choose(None if limit is None else limit - budget.tokens_used)
        carried = {k: getattr(p, k) for k in _CARRIED if k in p.model_fields_set}
        params = option_params(option.tts, budget=p.budget, **carried)
        chosen = strategy_class(option.strategy)(params)
        inner = dataclasses.replace(ctx, scoring=params.scoring(), reusable=reusable)
        result = await chosen.run(inner)
        details = {
            **result.details,
            **details,
            "chosen_strategy": option.strategy,
            "chosen_params": option.tts,
        }
        if reusable is None or probe is None:
            return StrategyResult(result.candidates, result.ranking, details)
        details["probe"]["reused"] = reusable.taken
        return _with_unused_probe(result, probe, reusable.taken, details)


def _with_unused_probe(
    result: StrategyResult, probe: Probe, taken: int, details: dict[str, Any]
) -> StrategyResult:
    """Probe samples the option did not take stay in the trace; they answer if it found none."""
    offset = len(result.candidates) - taken
    unused = range(taken, len(probe.sequences))
    extra = [RankedCandidate(probe.sequences[i], answer=probe.votes.answers[i]) for i in unused]
    ranking = result.ranking or [offset + i for i in probe.votes.rank(list(unused))]
    return StrategyResult([*result.candidates, *extra], ranking, details)
