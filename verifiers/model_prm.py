"""What process reward models run by transformers share: loading, batching and reading scores.

A family says how to lay out one answer for its model and where its step scores are read
(`request`), and which logit column means "correct"; the rest is here.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from .base import Aggregation, Question, ScoringOptions, VerifierKind
from .process import ProcessVerifier, StepBatch
from .reward_model import Backend, LogitRequest, ModelBacked

__all__ = ["ModelProcessVerifier"]


class ModelProcessVerifier(ModelBacked, ProcessVerifier):
    kind: ClassVar[VerifierKind] = "process"
    # The column, among those each request reads, whose probability is the step's score.
    correct_column: ClassVar[int] = 0

    def __init__(
        self,
        name: str,
        *,
        model: str | Path | None = None,
        aggregation: Aggregation | None = None,
        device: str | None = None,
        max_batch: int = 16,
        trust_remote_code: bool = False,
        backend: Backend = "auto",
        gpu_memory_utilization: float | None = None,
        url: str | None = None,
        api_key: str | None = None,
    ) -> None:
        ProcessVerifier.__init__(self, name, aggregation=aggregation)
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
        self.setup()

    def setup(self) -> None:
        """Look up the special tokens the recipe needs (after the tokenizer is loaded)."""

    @abstractmethod
    def request(self, question: Question, steps: Sequence[str]) -> LogitRequest:
        """The model input for one answer, its step positions, and the columns to read."""

    async def score_steps(
        self,
        question: Question,
        answers: Sequence[Sequence[str]],
        starts: Sequence[int],
        *,
        request_id: str,
        options: ScoringOptions,
    ) -> StepBatch:
        import torch

        # A step's score needs a pass over its whole prefix, so every position is computed;
        # only the new steps' scores are kept (the others are cached already).
        requests = [self.request(question, steps) for steps in answers]
        outputs = await self.scorer.logits(requests)
        column = self.correct_column
        scores = [
            torch.softmax(o, dim=-1)[start:, column].tolist()
            for o, start in zip(outputs, starts, strict=True)
        ]
        return StepBatch(scores, tokens=sum(len(r.token_ids) for r in requests))
