"""`step_judge`: a chat model (the policy by default) asked, for each step in context, if it is
correct; the step's score is P("Yes") against P("No").

A generative process verifier: it needs no reward model, so it works with the embedded default.
Every step of every candidate goes to the engine in one batch, and the step-score cache spares a
search the steps it has already judged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from ponder.core.engine import Engine
from ponder.core.prompting import Prompt

from .base import Aggregation, Question, ScoringOptions, VerifierKind
from .judge import JUDGE_TOP_LOGPROBS, YesNoJudge
from .process import ProcessVerifier, StepBatch

__all__ = ["STEP_PROMPT", "StepJudgeVerifier"]

STEP_PROMPT = (
    "Question:\n{question}\n\nSolution so far:\n{previous}\n\nNext step:\n{step}\n\n"
    "Is the next step correct? Reply with Yes or No."
)


class StepJudgeVerifier(ProcessVerifier):
    kind: ClassVar[VerifierKind] = "generative"
    family: ClassVar[str] = "yes_no_step_judge"
    description: ClassVar[str] = "the policy model asked if each step is correct; P(Yes) vs P(No)"
    top_logprobs: ClassVar[int] = JUDGE_TOP_LOGPROBS

    def __init__(
        self,
        engine: Engine,
        name: str = "step_judge",
        *,
        aggregation: Aggregation | None = None,
    ) -> None:
        super().__init__(name, aggregation=aggregation)
        self._judge = YesNoJudge(engine)

    @property
    def model(self) -> str | None:
        return self._judge.engine.model_name

    async def score_steps(
        self,
        question: Question,
        answers: Sequence[Sequence[str]],
        starts: Sequence[int],
        *,
        request_id: str,
        options: ScoringOptions,
    ) -> StepBatch:
        # Answers that share a prefix (siblings in a search) have that prefix judged once.
        index: dict[tuple[str, ...], int] = {}
        asked: list[Prompt] = []
        for steps, start in zip(answers, starts, strict=True):
            for k in range(start, len(steps)):
                step = steps[k]
                prefix = tuple(steps[: k + 1])
                if prefix in index:
                    continue
                index[prefix] = len(asked)
                previous = options.step_delimiter.join(steps[:k]) or "(nothing yet)"
                fields = {"question": question.text, "step": step}
                asked.append(Prompt(STEP_PROMPT, fields, {"previous": previous}))
        verdicts, tokens = await self._judge.ask(asked, request_id=request_id)
        scores: list[list[float | None]] = [
            [verdicts[index[tuple(steps[: k + 1])]] for k in range(start, len(steps))]
            for steps, start in zip(answers, starts, strict=True)
        ]
        return StepBatch(scores, tokens=tokens)
