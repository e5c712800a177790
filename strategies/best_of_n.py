"""`best_of_n`: N samples in one batched engine call, the best by a verifier.

The weighted variant (Li et al. 2023; search-and-learn's "weighted best-of-N") sums verifier scores
over candidates that reach the same final answer and returns the best-scored candidate of the
heaviest answer, which beats plain best-of-N when the verifier is noisy.
"""

from __future__ import annotations

import asyncio
from typing import ClassVar

from pydantic import Field

from ponder.core.answers import extract_answer, tally

from .base import RankedCandidate, Strategy, StrategyParams, StrategyResult
from .context import StrategyContext
from .progress import best_score

__all__ = ["BestOfN", "BestOfNParams"]


class BestOfNParams(StrategyParams):
    n: int = Field(4, ge=1, description="Candidates sampled in one batched engine call.")
    verifier: str = Field("self_judge", description="Verifier that scores the candidates.")
    weighted: bool = Field(False, description="Sum scores per distinct final answer.")

    def candidates(self) -> int:
        return self.n

    def verifier_names(self) -> dict[str, str]:
        return {"tts.verifier": self.verifier}


class BestOfN(Strategy):
    name: ClassVar[str] = "best_of_n"
    samples_whole_answers: ClassVar[bool] = True
    description: ClassVar[str] = "N samples in one batch; the best by a verifier or weighted vote."
    Params: ClassVar[type[StrategyParams]] = BestOfNParams
    params: BestOfNParams

    async def run(self, ctx: StrategyContext) -> StrategyResult:
        verifier = ctx.verifier(self.params.verifier)
        generations = await ctx.sample(self.params.n, options=ctx.options_for(verifier))
        sequences = list(generations[0].sequences) if generations else []
        ctx.report_progress(self.name, "sample", 1, 2, len(sequences), None)
        scored = await ctx.score(verifier, sequences)
        scores = scored.values
        ctx.report_progress(self.name, "score", 2, 2, len(sequences), best_score(scores))
        # Unscored candidates (budget) rank last; equal scores keep sampling order.
        ranking = sorted(
            range(len(scores)), key=lambda i: (scores[i] is None, -(scores[i] or 0.0), i)
        )
        details: dict[str, object] = {"verifier": verifier.name, "weighted": self.params.weighted}
        answers = [extract_answer(s.text) for s in sequences]
        if self.params.weighted and sequences:
            votes = await asyncio.to_thread(tally, answers, [s or 0.0 for s in scores])
            ranking = votes.rank(ranking)
            details["answer_weights"] = votes.summary()
        candidates = [
            RankedCandidate(s, score=score, answer=answer, step_scores=steps)
            for s, score, answer, steps in zip(
                sequences, scores, answers, scored.steps, strict=True
            )
        ]
        return StrategyResult(candidates=candidates, ranking=ranking, details=details)
