"""`rlhflow_prm`: RLHFlow-style process reward models (a causal LM scoring a multi-turn chat).

Recipe of RLHFlow's PRMs: each step is a user turn (the first one prefixed by the question) and
each assistant turn is `+`; a step's score is P(`+`) against P(`-`) at the position that predicts
that assistant turn's first token.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from .base import Question, VerifierError
from .model_prm import ModelProcessVerifier
from .reward_model import Head, LogitRequest

__all__ = ["RLHFlowPRM"]


class RLHFlowPRM(ModelProcessVerifier):
    family: ClassVar[str] = "rlhflow_prm"
    description: ClassVar[str] = "RLHFlow style: each step a user turn; P(+) vs P(-) as the reply"
    correct_column: ClassVar[int] = 0
    head: Head = "causal_lm"

    def setup(self) -> None:
        if not self.scorer.tokenizer.chat_template:
            raise VerifierError("an RLHFlow-style PRM needs a tokenizer with a chat template")
        self.good_id = self.single_token("+")
        self.bad_id = self.single_token("-")

    def request(self, question: Question, steps: Sequence[str]) -> LogitRequest:
        conversation: list[dict[str, Any]] = []
        positions = []
        for k, step in enumerate(steps):
            content = f"{question.text} {step}" if k == 0 else step
            conversation.append({"role": "user", "content": content})
            # The logits at the last token of the prompt predict the assistant's reply.
            positions.append(len(self.render(conversation, generation_prompt=True)) - 1)
            conversation.append({"role": "assistant", "content": "+"})
        ids = self.render(conversation, generation_prompt=False)
        if any(ids[p + 1] != self.good_id for p in positions):
            raise VerifierError("the PRM's chat template does not keep each turn's prefix")
        return LogitRequest(tuple(ids), tuple(positions), (self.good_id, self.bad_id))
