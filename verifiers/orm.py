"""`orm`: an outcome reward model, any HF sequence classifier (e.g. the Skywork-Reward-V2 family).

The conversation with the candidate as the assistant's turn goes through the reward model's own
chat template; its output is the reward. A single raw reward is squashed by a sigmoid into [0, 1]
(monotone, so rankings are unchanged); with two or more labels the last label's probability is
the score.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from .base import DEFAULT_SCORING, Candidate, Question, Scores, ScoringOptions, VerifierKind
from .reward_model import Backend, Head, LogitRequest, ModelBacked

__all__ = ["OutcomeRewardModel"]


class OutcomeRewardModel(ModelBacked):
    kind: ClassVar[VerifierKind] = "outcome"
    family: ClassVar[str] = "sequence_classification"
    description: ClassVar[str] = "outcome reward model (HF sequence classifier) scores the answer"
    needs_logprobs: ClassVar[bool] = False
    top_logprobs: ClassVar[int] = 0
    head: Head = "sequence_classification"

    def __init__(
        self,
        name: str = "orm",
        *,
        model: str | Path | None = None,
        device: str | None = None,
        max_batch: int = 16,
        trust_remote_code: bool = False,
        backend: Backend = "auto",
        gpu_memory_utilization: float | None = None,
        url: str | None = None,
        api_key: str | None = None,
    ) -> None:
        self.name = name
        self.load_model(
            model,
            device=device,
            max_batch=max_batch,
            trust_remote_code=trust_remote_code,
            backend=backend,
            gpu_memory_utilization=gpu_memory_utilization,
            url=url,
            api_key=api_key,
        )

    def conversation_ids(self, question: Question, answer: str) -> list[int]:
        messages = [*question.messages, {"role": "assistant", "content": answer}]
        if self.scorer.tokenizer.chat_template:
            return self.render(messages, generation_prompt=False)
        # Without a template, the plain question-answer layout reward models were trained on.
        return self.encode(f"{question.text}\n\n{answer}", special_tokens=True)

    async def score(
        self,
        question: Question,
        candidates: Sequence[Candidate],
        *,
        request_id: str,
        options: ScoringOptions = DEFAULT_SCORING,
    ) -> Scores:
        import torch

        requests = [
            LogitRequest(tuple(self.conversation_ids(question, c.text))) for c in candidates
        ]
        outputs = await self.scorer.logits(requests)
        values = []
        for logits in outputs:
            if logits.numel() == 1:
                values.append(float(torch.sigmoid(logits.reshape(()))))
            else:
                values.append(float(torch.softmax(logits, dim=-1)[-1]))
        return Scores(tuple(values), tokens=sum(len(r.token_ids) for r in requests))
