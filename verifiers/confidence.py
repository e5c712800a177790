"""`confidence`: the policy's own certainty, as the geometric mean of its token probabilities.

Free (it reads log-probs the sampler already returned), and a known-useful signal for best-of-N;
weaker than a trained verifier. It reads only the sampled tokens: `self_certainty` (Kang et al.
2025) reads each whole next-token distribution instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from ponder.core.confidence import mean_probability

from .base import (
    DEFAULT_SCORING,
    Candidate,
    Question,
    Scores,
    ScoringOptions,
    VerifierKind,
    logprob_scores,
)

__all__ = ["ConfidenceVerifier"]


class ConfidenceVerifier:
    kind: ClassVar[VerifierKind] = "programmatic"
    family: ClassVar[str] = "confidence"
    description: ClassVar[str] = "exp(mean token log-probability) of the answer under the policy"
    needs_logprobs: ClassVar[bool] = True
    top_logprobs: ClassVar[int] = 0

    def __init__(self, name: str = "confidence") -> None:
        self.name = name

    @property
    def model(self) -> str | None:
        return None

    async def score(
        self,
        question: Question,
        candidates: Sequence[Candidate],
        *,
        request_id: str,
        options: ScoringOptions = DEFAULT_SCORING,
    ) -> Scores:
        return logprob_scores(self.family, candidates, mean_probability)
