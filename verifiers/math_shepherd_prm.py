"""`math_shepherd_prm`: Math-Shepherd-style process reward models (a causal LM).

Recipe of the Math-Shepherd release: the question, then the steps, each ending in the step tag
` ки`; at each tag position the step's score is the softmax over the logits of the `+` and `-`
tokens, taking `+`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from .base import Question, VerifierError
from .model_prm import ModelProcessVerifier
from .reward_model import Head, LogitRequest

__all__ = ["STEP_TAG", "MathShepherdPRM"]

STEP_TAG = "ки"


class MathShepherdPRM(ModelProcessVerifier):
    family: ClassVar[str] = "math_shepherd_prm"
    description: ClassVar[str] = "Math-Shepherd style: P(+) vs P(-) at each ' ки' step tag"
    correct_column: ClassVar[int] = 0
    head: Head = "causal_lm"

    def setup(self) -> None:
        self.tag_id = self.encode(STEP_TAG)[-1]
        good_bad = self.encode("+ -")
        self.good_id, self.bad_id = good_bad[0], good_bad[-1]

    def request(self, question: Question, steps: Sequence[str]) -> LogitRequest:
        body = "".join(f"{s.replace(STEP_TAG, '')} {STEP_TAG}\n" for s in steps)
        ids = self.encode(f"{question.text} {body}", special_tokens=True)
        positions = tuple(i for i, t in enumerate(ids) if t == self.tag_id)
        if len(positions) != len(steps):
            raise VerifierError("the step tag is not one token for this PRM's tokenizer")
        return LogitRequest(tuple(ids), positions, (self.good_id, self.bad_id))
