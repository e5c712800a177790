"""`reference`: score candidates against a known answer, for evaluations.

With the right answer in hand (`tts.reference`), a candidate is right or wrong: it scores 1 when
its final answer is equivalent to the reference and 0 otherwise. Equivalence is the same test
voting uses (`strategies.answers`), so an evaluation measures what self-consistency would count
as agreement: numbers exactly, expressions with math-verify.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import ClassVar

from ponder.core.answers import equivalent, extract_answer

from .base import (
    DEFAULT_SCORING,
    Candidate,
    Question,
    Scores,
    ScoringOptions,
    VerifierError,
    VerifierKind,
)

__all__ = ["ReferenceVerifier"]

# A longer reference is refused: no final answer is that long (candidates that long count as wrong
# in `equivalent`).
_MAX_ANSWER_CHARS = 1000


class ReferenceVerifier:
    kind: ClassVar[VerifierKind] = "programmatic"
    family: ClassVar[str] = "reference"
    description: ClassVar[str] = (
        "1 if the final answer is equivalent to the known answer (tts.reference), else 0"
    )
    needs_logprobs: ClassVar[bool] = False
    top_logprobs: ClassVar[int] = 0

    def __init__(self, name: str = "reference") -> None:
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
        reference = (options.reference or "").strip()
        if not reference:
            raise VerifierError("the reference verifier needs tts.reference, the known answer")
        if len(reference) > _MAX_ANSWER_CHARS:
            raise VerifierError(
                f"tts.reference is longer than {_MAX_ANSWER_CHARS} characters; "
                "give the final answer only"
            )
        answers = [extract_answer(c.text) for c in candidates]
        # Each answer against the reference only; symbolic comparison blocks (sympy), so the
        # batch makes one trip off the event loop.
        matches = await asyncio.to_thread(lambda: [equivalent(a, reference) for a in answers])
        return Scores(tuple(1.0 if m else 0.0 for m in matches), tokens=0)
