"""`deepconf`: confidence-filtered, confidence-weighted voting (Fu et al. 2025, "Deep Think with
Confidence").

A trace's confidence is read from the top log-probs of its tokens (`ponder.core.confidence`): the
least confident sliding window of it (lowest group confidence), the mean of its least confident
tenth of windows, or its last tokens (tail). Traces the model was unsure of are more often wrong,
so they are dropped from the vote or stopped early.

- offline: sample N traces in one batch, keep the `keep` most confident share, and vote with each
  kept trace weighted by its confidence.
- online: start all N traces at once (as self-consistency does, so it never takes longer); the
  first `warmup` to finish set the threshold, the (1 - keep) quantile of their lowest group
  confidence; from then on a trace is stopped as soon as the confidence of its latest window falls
  below it. The paper runs the warm-up before the other traces; starting them together costs no
  extra time, and a trace already below the threshold when it is set is stopped at once. Once the
  confidence-weighted share of the leading answer reaches `consensus`, the rest are stopped too.
  Where the engine can, it stops a trace itself at the first token below the threshold
  (`CandidateStream.stop_below`); a stop sent from here arrives some tokens late.

Token confidence reads the top `top_logprobs` alternatives alone (as the paper defines it), not the
sampled token that an engine lists after them when it is not one of them: the engine computes the
same number before it samples, so both stop a trace at the same token.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
from collections.abc import Sequence
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from ponder.core.answers import exact_totals, extract_answer, tally
from ponder.core.confidence import (
    RunningGroupConfidence,
    bottom_group_confidence,
    lowest_group_confidence,
    tail_confidence,
)
from ponder.core.engine import GeneratedSequence, SamplingOptions, TokenLogprob

from .base import RankedCandidate, Strategy, StrategyParams, StrategyResult
from .context import StrategyContext

__all__ = ["DeepConf", "DeepConfParams", "consensus_reached", "quantile"]

Measure = Literal["lowest_group", "bottom_group", "tail"]


class DeepConfParams(StrategyParams):
    n: int = Field(16, ge=1, description="Most traces sampled.")
    mode: Literal["online", "offline"] = Field(
        "online", description="online: stop low-confidence traces early; offline: filter after."
    )
    # keep, warmup and consensus were chosen together on the embedded model's tuning samples
    # (bench/adaptive_replay.py, docs/results/adaptive/tuning.md): the most accurate online
    # setting that replayed at under half of self-consistency@16's tokens. The paper's values
    # (keep 0.1 or 0.9, a warm-up of 16 traces of 512, consensus 0.95) assume larger budgets.
    keep: float = Field(
        0.5,
        gt=0.0,
        le=1.0,
        description="Share of traces kept by confidence (DeepConf's eta: 0.1 'low', 0.9 'high').",
    )
    confidence: Measure = Field(
        "lowest_group", description="A trace's confidence: lowest_group, bottom_group or tail."
    )
    window: int = Field(32, ge=1, le=4096, description="Tokens per group (sliding window).")
    tail: int = Field(32, ge=1, le=4096, description="Last tokens read by the tail confidence.")
    top_logprobs: int = Field(5, ge=1, le=20, description="Alternatives read per token.")
    warmup: int = Field(3, ge=1, description="Online: finished traces that set the threshold.")
    consensus: float = Field(
        0.6,
        gt=0.5,
        le=1.0,
        description="Online: weighted share of the leading answer that stops the rest "
        "(1: never stop for consensus).",
    )

    @model_validator(mode="after")
    def _fit_n(self) -> DeepConfParams:
        self.warmup = min(self.warmup, self.n)
        return self

    def candidates(self) -> int:
        return self.n

    def top_logprobs_needed(self) -> dict[str, int]:
        return {"tts.top_logprobs": self.top_logprobs}


def quantile(values: Sequence[float], q: float) -> float:
    """The `q` quantile of `values`, linearly interpolated (numpy's default)."""
    ordered = sorted(values)
    at = q * (len(ordered) - 1)
    low = math.floor(at)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (at - low)


def consensus_reached(
    answers: Sequence[str | None], confidences: Sequence[float], consensus: float
) -> bool:
    """Whether the leading answer holds `consensus` of the confidence-weighted vote of these
    traces (1: never)."""
    if consensus >= 1.0:
        return False
    totals = exact_totals(answers, [max(c, 0.0) for c in confidences])
    total = sum(totals)
    return bool(totals) and total > 0 and totals[0] / total >= consensus


def _below(value: float | None, threshold: float) -> bool:
    """Whether a running trace's confidence so far (None before a whole window) is below."""
    return value is not None and value < threshold


class DeepConf(Strategy):
    name: ClassVar[str] = "deepconf"
    description: ClassVar[str] = "Confidence-filtered, weighted voting; online stops unsure traces."
    Params: ClassVar[type[StrategyParams]] = DeepConfParams
    params: DeepConfParams

    def _options(self, ctx: StrategyContext) -> SamplingOptions:
        """The request's options with the top log-probs confidence is read from. Their token
        texts are not read (unless the client asked for log-probs), which spares the engine
        decoding every alternative of every token."""
        texts = ctx.options.logprobs is not None and ctx.options.logprob_texts
        return ctx.options.replace(logprobs=self.params.top_logprobs, logprob_texts=texts)

    def _confidence(self, tokens: Sequence[TokenLogprob]) -> float | None:
        p = self.params
        if p.confidence == "tail":
            return tail_confidence(tokens, p.tail, p.top_logprobs)
        if p.confidence == "bottom_group":
            return bottom_group_confidence(tokens, p.window, top_k=p.top_logprobs)
        return lowest_group_confidence(tokens, p.window, p.top_logprobs)

    async def _offline(self, ctx: StrategyContext) -> tuple[list[GeneratedSequence], dict]:
        options = self._options(ctx)
        generations = await ctx.sample(self.params.n, options=options)
        sequences = list(generations[0].sequences) if generations else []
        confidences = [self._confidence(s.logprobs or ()) for s in sequences]
        known = [c for c in confidences if c is not None]
        kept = max(1, math.ceil(self.params.keep * len(known))) if known else 0
        cut = sorted(known, reverse=True)[kept - 1] if kept else math.inf
        voting = [c is not None and c >= cut for c in confidences]
        threshold = cut if kept else None
        return sequences, {"confidences": confidences, "voting": voting, "threshold": threshold}

    async def _online(self, ctx: StrategyContext) -> tuple[list[GeneratedSequence], dict]:
        p = self.params
        # The engine may stop a trace itself, at the first token below the floor, where it can.
        options = self._options(ctx).replace(confidence_window=p.window)
        threshold: float | None = None
        warm: list[float] = []
        lowest: dict[int, float] = {}
        answers: dict[int, str | None] = {}
        early: set[int] = set()
        async with ctx.watch_samples(p.n, options) as samples:
            groups = [RunningGroupConfidence(p.window, p.top_logprobs) for _ in range(samples.n)]
            async for delta in samples:
                i = delta.index
                groups[i].add(delta.logprobs or ())
                if delta.finish_reason == "abort":
                    continue
                if delta.finish_reason is None:
                    # Tokens made before a stop still arrive: stop each trace once.
                    low = groups[i].lowest
                    if threshold is not None and i not in early and _below(low, threshold):
                        early.add(i)
                        await samples.stop([i])
                    continue
                # The running groups hold the whole trace; the engine's stop reads the same.
                lowest[i] = groups[i].trace_lowest or 0.0
                if threshold is not None and _below(groups[i].lowest, threshold):
                    # Stopped by the engine at the floor, or ended before this stop reached it.
                    early.add(i)
                    continue
                answers[i] = extract_answer(samples.text(i))
                if threshold is None:
                    warm.append(lowest[i])
                    if len(warm) < p.warmup:
                        continue
                    threshold = quantile(warm, 1.0 - p.keep)
                    below = [j for j in samples.running() if _below(groups[j].lowest, threshold)]
                    early.update(below)
                    await samples.stop(below)
                    await samples.stop_below(threshold)
                if samples.running() and self._agreed(answers, lowest, threshold):
                    await samples.stop()
        sequences = [
            # A trace stopped for its confidence is cut short, however the engine ended it.
            dataclasses.replace(s, finish_reason="abort") if i in early else s
            for i, s in enumerate(samples.sequences())
        ]
        confidences = [
            self._confidence(s.logprobs or ()) if s.finish_reason != "abort" else None
            for s in sequences
        ]
        voting = [
            c is not None and (threshold is None or lowest[i] >= threshold)
            for i, c in enumerate(confidences)
        ]
        details = {
            "confidences": confidences,
            "voting": voting,
            "threshold": threshold,
            "stopped_low_confidence": len(early),
        }
        return sequences, details

    def _agreed(self, answers: dict[int, str | None], lowest: dict[int, float], cut: float) -> bool:
        """Whether the finished traces above the threshold have reached consensus."""
        kept = [i for i in answers if lowest[i] >= cut]
        return consensus_reached(
            [answers[i] for i in kept], [lowest[i] for i in kept], self.params.consensus
        )

    async def run(self, ctx: StrategyContext) -> StrategyResult:
        run = self._online if self.params.mode == "online" else self._offline
        sequences, details = await run(ctx)
        confidences: list[float | None] = details["confidences"]
        voting: list[bool] = details.pop("voting")
        answers = [
            extract_answer(s.text) if v else None for s, v in zip(sequences, voting, strict=True)
        ]
        weights = [max(c or 0.0, 0.0) for c in confidences]
        votes = await asyncio.to_thread(tally, answers, weights)
        candidates = [
            RankedCandidate(s, score=confidences[i], answer=answers[i])
            for i, s in enumerate(sequences)
        ]
        # Traces left out of the vote come last: a stopped one is cut short.
        ranking = sorted(votes.rank_representatives(), key=lambda i: not voting[i])
        details["votes"] = votes.summary()
        details["stopped"] = sum(s.finish_reason == "abort" for s in sequences)
        return StrategyResult(candidates, ranking, details)
