"""`qwen_prm`: Qwen2.5-Math-PRM-style process reward models (a token-classification head).

Recipe of the model card: the steps joined with `<extra_0>` and one trailing `<extra_0>` as the
assistant's turn, after the system prompt below and the question, through the chat template
without a generation prompt; each step's score is the positive-class probability (softmax over
the two logits) at its `<extra_0>` position.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from .base import Question, VerifierError
from .model_prm import ModelProcessVerifier
from .reward_model import Head, LogitRequest

__all__ = ["STEP_SEPARATOR", "SYSTEM_PROMPT", "QwenPRM"]

SYSTEM_PROMPT = "Please reason step by step, and put your final answer within \\boxed{}."
STEP_SEPARATOR = "<extra_0>"


class QwenPRM(ModelProcessVerifier):
    family: ClassVar[str] = "qwen_prm"
    description: ClassVar[str] = "Qwen2.5-Math-PRM style: P(correct) at each <extra_0> step mark"
    correct_column: ClassVar[int] = 1
    head: Head = "token_classification"

    def setup(self) -> None:
        self.separator_id = self.single_token(STEP_SEPARATOR)

    def request(self, question: Question, steps: Sequence[str]) -> LogitRequest:
        # A step that contains the marker itself would shift every later score.
        clean = [s.replace(STEP_SEPARATOR, "") for s in steps]
        messages = [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": question.text},
            {"role": "assistant", "content": STEP_SEPARATOR.join(clean) + STEP_SEPARATOR},
        ]
        ids = self.render(messages, generation_prompt=False)
        positions = tuple(i for i, t in enumerate(ids) if t == self.separator_id)
        if len(positions) != len(steps):
            raise VerifierError("the PRM's chat template changed the step marks")
        return LogitRequest(tuple(ids), positions)
