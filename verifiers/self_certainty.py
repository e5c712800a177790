"""`self_certainty`: the policy's certainty read from its whole next-token distributions.

Kang et al. 2025 ("Scalable Best-of-N Selection for Large Language Models via Self-Certainty")
rank candidates by how far each next-token distribution is from uniform, KL(U || p), averaged
over the answer's tokens: a model that knows the answer commits to it sharply, and unlike the
sampled tokens' own probability (the `confidence` verifier) the measure reads every alternative,
so a lucky token sampled from a flat distribution does not count as certainty. It needs no reward
model and no extra engine call: the top alternatives come back with the samples
(`top_logprobs`), and the measure itself is `ponder.core.confidence.self_certainty`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

from ponder.core.confidence import self_certainty
from ponder.core.engine import Engine, TokenLogprob

from .base import (
    DEFAULT_SCORING,
    Candidate,
    Question,
    Scores,
    ScoringOptions,
    VerifierKind,
    logprob_scores,
)

__all__ = ["SELF_CERTAINTY_TOP_LOGPROBS", "SelfCertaintyVerifier", "certainty_score"]

# Alternatives read per token; the mass beyond them is spread evenly over the rest of the
# vocabulary. 20 is what every server already allows (the judges read as many).
SELF_CERTAINTY_TOP_LOGPROBS = 20


def certainty_score(certainty: float) -> float:
    """Self-certainty (a KL divergence, 0 for a uniform distribution) as a score in [0, 1):
    1 - exp(-KL), which keeps the order and lets scores be summed per answer."""
    return 1.0 - math.exp(-max(certainty, 0.0))


class SelfCertaintyVerifier:
    kind: ClassVar[VerifierKind] = "programmatic"
    family: ClassVar[str] = "self_certainty"
    description: ClassVar[str] = (
        "self-certainty (Kang et al. 2025): mean KL(uniform || next-token distribution) over the "
        "answer, from the top log-probs; 1 - exp(-KL)"
    )
    needs_logprobs: ClassVar[bool] = True
    top_logprobs: ClassVar[int] = SELF_CERTAINTY_TOP_LOGPROBS

    def __init__(self, engine: Engine, name: str = "self_certainty") -> None:
        self.name = name
        # The distribution is over the policy's vocabulary; the engine knows its size.
        self.vocab_size = engine.vocab_size

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
        def measure(logprobs: Sequence[TokenLogprob]) -> float | None:
            certainty = self_certainty(logprobs, self.vocab_size)
            return None if certainty is None else certainty_score(certainty)

        return logprob_scores(self.family, candidates, measure)
