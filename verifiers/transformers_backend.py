"""Reward models run by transformers: load a local folder, read logits where a recipe says.

Families describe what to feed the model and which positions and columns to read; this module
owns the model, batches forward passes across requests (`BatchRunner`) and returns only the
logits asked for, so a causal LM never ships a whole vocabulary per token back to Python.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .base import VerifierError
from .batching import BatchRunner
from .reward_model import Head, LogitRequest

__all__ = ["TransformersScorer", "pick_device"]

logger = logging.getLogger(__name__)


def pick_device(device: str | None) -> str:
    if device:
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class TransformersScorer:
    """A local HF model with a classification or LM head, run without gradients."""

    def __init__(
        self,
        path: Path,
        head: Head,
        *,
        device: str | None = None,
        max_batch: int = 16,
        trust_remote_code: bool = False,
    ) -> None:
        import torch
        import transformers

        if not (path / "config.json").is_file():
            raise VerifierError(f"verifier model folder has no config.json: {path}")
        self.path = path
        self.head = head
        self.device = pick_device(device)
        dtype = torch.bfloat16 if self.device.startswith("cuda") else torch.float32
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(
            path, trust_remote_code=trust_remote_code
        )
        auto = {
            "sequence_classification": transformers.AutoModelForSequenceClassification,
            "token_classification": transformers.AutoModelForTokenClassification,
            "causal_lm": transformers.AutoModelForCausalLM,
        }[head]
        try:
            model = auto.from_pretrained(path, dtype=dtype, trust_remote_code=trust_remote_code)
        except ValueError:
            if not trust_remote_code:
                raise
            # Models such as Qwen2.5-Math-PRM ship their head as remote code under AutoModel.
            model = transformers.AutoModel.from_pretrained(
                path, dtype=dtype, trust_remote_code=True
            )
        if head == "sequence_classification" and model.config.pad_token_id is None:
            # Batched classification finds each sequence's last token through the pad id.
            model.config.pad_token_id = self.tokenizer.pad_token_id or self.tokenizer.eos_token_id
        self.model = model.to(self.device).eval()
        if head == "sequence_classification":
            # The head finds each row's last token as the last one that is not its config's pad
            # id: padding with any other id would read shorter rows' scores from their padding,
            # so a score would depend on what it was batched with.
            self._pad_id = int(model.config.pad_token_id)
        else:
            self._pad_id = int(
                self.tokenizer.pad_token_id
                if self.tokenizer.pad_token_id is not None
                else (model.config.pad_token_id or 0)
            )
        # A causal LM's logits are batch x length x vocabulary (gigabytes for a 128k vocabulary
        # and long answers) when only a few positions are read: where the model can, it computes
        # the output layer at those positions only.
        self._keeps_logits = (
            head == "causal_lm" and "logits_to_keep" in inspect.signature(model.forward).parameters
        )
        self._runner: BatchRunner[LogitRequest, Any] = BatchRunner(self._forward, max_batch)

    @property
    def parameter_bytes(self) -> int:
        return sum(p.numel() * p.element_size() for p in self.model.parameters())

    @property
    def batches_run(self) -> int:
        return self._runner.batches_run

    async def logits(self, requests: Sequence[LogitRequest]) -> list[Any]:
        """Per request: [len(positions), len(columns)] float32 logits, or [labels] for a sequence
        classifier. Requests from concurrent callers share forward passes."""
        return await self._runner.submit(list(requests))

    def _forward(self, batch: list[LogitRequest]) -> list[Any]:
        import torch

        longest = max(len(r.token_ids) for r in batch)
        ids = torch.full((len(batch), longest), self._pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), longest), dtype=torch.long)
        for row, request in enumerate(batch):
            ids[row, : len(request.token_ids)] = torch.tensor(request.token_ids)
            mask[row, : len(request.token_ids)] = 1
        kept = sorted({p for r in batch for p in r.positions}) if self._keeps_logits else None
        extra = {} if kept is None else {"logits_to_keep": torch.tensor(kept, device=self.device)}
        with torch.inference_mode():
            output = self.model(
                input_ids=ids.to(self.device), attention_mask=mask.to(self.device), **extra
            )
        logits = output.logits if hasattr(output, "logits") else output[0]
        # Where only kept positions were computed, position p is at column kept.index(p).
        at = {p: i for i, p in enumerate(kept)} if kept is not None else None
        results = []
        for row, request in enumerate(batch):
            if self.head == "sequence_classification":
                results.append(logits[row].float().cpu())
                continue
            positions = list(request.positions)
            picked = logits[row, positions if at is None else [at[p] for p in positions]]
            if request.columns is not None:
                picked = picked[:, list(request.columns)]
            results.append(picked.float().cpu())
        return results

    def shutdown(self) -> None:
        """Release the weights, and the GPU memory they held."""
        del self.model
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.empty_cache()
