"""Reward models run by transformers: load a local folder, read logits where a recipe says.

Families describe what to feed the model and which positions and columns to read; this module
owns the model, batches forward passes across requests (`BatchRunner`) and returns only the
logits asked for, so a causal LM never ships a whole vocabulary per token back to Python.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from .base import VerifierError
from .batching import BatchRunner

__all__ = ["Backend", "Head", "LogitRequest", "ModelBacked", "TransformersScorer", "pick_device"]

logger = logging.getLogger(__name__)

Head = Literal["sequence_classification", "token_classification", "causal_lm"]


def pick_device(device: str | None) -> str:
    if device:
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@dataclass(frozen=True)
class LogitRequest:
    """One sequence to run, the positions whose logits to return, and which columns of them."""

    token_ids: tuple[int, ...]
    positions: tuple[int, ...] = ()
    columns: tuple[int, ...] | None = None


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


Backend = Literal["auto", "vllm", "transformers"]


class ModelBacked:
    """What families with their own reward model share: the scorer and its name."""

    head: Head
    scorer: Any  # TransformersScorer or VLLMPoolingScorer: the same interface

    def load_model(
        self,
        model: str | Path | None,
        *,
        device: str | None = None,
        max_batch: int = 16,
        trust_remote_code: bool = False,
        backend: Backend = "auto",
        gpu_memory_utilization: float | None = None,
    ) -> None:
        from .vllm_backend import VLLMPoolingScorer, vllm_supports

        if model is None:
            raise VerifierError(f"{type(self).__name__} needs a local model folder (`model`)")
        path = Path(model).expanduser()
        if not (path / "config.json").is_file():
            raise VerifierError(f"verifier model folder has no config.json: {path}")
        if backend == "vllm" or (backend == "auto" and vllm_supports(path, self.head)):
            logger.info("running %s on vLLM's pooling runner", path.name)
            self.scorer = VLLMPoolingScorer(
                path,
                self.head,
                max_batch=max_batch,
                gpu_memory_utilization=gpu_memory_utilization,
            )
            return
        self.scorer = TransformersScorer(
            path,
            self.head,
            device=device,
            max_batch=max_batch,
            trust_remote_code=trust_remote_code,
        )

    def shutdown(self) -> None:
        stop = getattr(self.scorer, "shutdown", None)
        if stop is not None:
            stop()

    @property
    def model(self) -> str | None:
        return self.scorer.path.name

    def encode(self, text: str, *, special_tokens: bool = False) -> list[int]:
        return list(self.scorer.tokenizer.encode(text, add_special_tokens=special_tokens))

    def render(self, messages: Sequence[dict[str, Any]], *, generation_prompt: bool) -> list[int]:
        text = self.scorer.tokenizer.apply_chat_template(
            list(messages), tokenize=False, add_generation_prompt=generation_prompt
        )
        return self.encode(str(text))

    def single_token(self, text: str) -> int:
        ids = self.encode(text)
        if len(ids) != 1:
            raise VerifierError(f"{text!r} is not one token for the model at {self.scorer.path}")
        return ids[0]
