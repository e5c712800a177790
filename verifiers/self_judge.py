"""`self_judge`: the policy model asked whether each candidate answer is correct.

The score is P("Yes") / (P("Yes") + P("No")) read from the next-token log-probs of one greedy
token, so it costs one prefill per candidate and all candidates go to the engine in one batch.
Works with any chat model, the embedded default included.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from ponder.core.engine import Engine
from ponder.core.prompting import Prompt

from .base import DEFAULT_SCORING, Candidate, Question, Scores, ScoringOptions, VerifierKind
from .judge import JUDGE_TOP_LOGPROBS, YesNoJudge

__all__ = ["JUDGE_PROMPT", "SelfJudgeVerifier"]

JUDGE_PROMPT = (
    "Question:\n{question}\n\nProposed answer:\n{answer}\n\n"
    "Is the proposed answer correct? Reply with Yes or No."
)


class SelfJudgeVerifier:
    kind: ClassVar[VerifierKind] = "generative"
    family: ClassVar[str] = "yes_no_judge"
    description: ClassVar[str] = 'the policy model asked "is this answer correct?"; P(Yes) vs P(No)'
    needs_logprobs: ClassVar[bool] = False
    top_logprobs: ClassVar[int] = JUDGE_TOP_LOGPROBS

    def __init__(self, engine: Engine, name: str = "self_judge") -> None:
        self.name = name
        self._judge = YesNoJudge(engine)

    @property
    def model(self) -> str | None:
        return self._judge.engine.model_name

    async def score(
        self,
        question: Question,
        candidates: Sequence[Candidate],
        *,
        request_id: str,
        options: ScoringOptions = DEFAULT_SCORING,
    ) -> Scores:
        fields = {"question": question.text}
        asked = [Prompt(JUDGE_PROMPT, fields, {"answer": c.text}) for c in candidates]
        values, tokens = await self._judge.ask(asked, request_id=request_id)
        return Scores(tuple(values), tokens=tokens)
