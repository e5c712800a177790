"""What every reward model shares, whichever backend runs it: the request and the choice.

A family (ORM, Qwen PRM, Math-Shepherd, RLHFlow) says which head it reads and which positions and
columns of the logits it wants; a `Scorer` runs the model. Two backends implement `Scorer`:
transformers (`transformers_backend.py`) and vLLM's pooling runner (`vllm_backend.py`). Both
import this module and it imports neither: the backend is chosen here by name and imported
lazily, so a server that never loads a reward model never imports torch for one.
"""

from __future__ import annotations

import importlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from .base import VerifierError

__all__ = [
    "Backend",
    "Head",
    "LogitRequest",
    "ModelBacked",
    "Scorer",
    "picked_logits",
    "vllm_supports",
]

logger = logging.getLogger(__name__)

Head = Literal["sequence_classification", "token_classification", "causal_lm"]


@dataclass(frozen=True)
class LogitRequest:
    """One sequence to run, the positions whose logits to return, and which columns of them."""

    token_ids: tuple[int, ...]
    positions: tuple[int, ...] = ()
    columns: tuple[int, ...] | None = None


class Scorer(Protocol):
    """A loaded reward model: its folder, head, tokenizer and device, and batched logits."""

    path: Path
    head: Head
    device: str
    tokenizer: Any

    @property
    def parameter_bytes(self) -> int:
        """Bytes of weights this process holds for the model (0 when an engine holds them)."""
        ...

    async def logits(self, requests: Sequence[LogitRequest]) -> list[Any]:
        """Per request: [len(positions), len(columns)] float32 logits, or [labels] for a
        sequence classifier."""
        ...

    def shutdown(self) -> None: ...


def picked_logits(data: Any, head: Head, request: LogitRequest) -> Any:
    """From a pooling model's output (all tokens' logits, or a classifier's labels), what the
    request asked for: [len(positions), len(columns)], or [labels]."""
    if head == "sequence_classification":
        return data.reshape(-1)
    picked = data[list(request.positions)]
    if request.columns is not None:
        picked = picked[:, list(request.columns)]
    return picked


_SCORERS = {
    "vllm": "ponder.verifiers.vllm_backend:VLLMPoolingScorer",
    "remote": "ponder.verifiers.remote_backend:RemotePoolingScorer",
    "transformers": "ponder.verifiers.transformers_backend:TransformersScorer",
}


def _scorer_class(backend: str) -> Any:
    module, _, name = _SCORERS[backend].partition(":")
    return getattr(importlib.import_module(module), name)


def _architectures(path: Path) -> list[str]:
    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, ValueError):
        return []
    return list(config.get("architectures") or [])


def vllm_supports(path: Path, head: Head) -> bool:
    """Whether vLLM's pooling runner implements this model with the head a family reads."""
    try:
        from vllm.model_executor.models import ModelRegistry
    except ImportError:
        return False
    supported = set(ModelRegistry.get_supported_archs())
    for arch in _architectures(path):
        if head == "token_classification" and arch.endswith("ForProcessRewardModel"):
            return arch in supported
        if head == "sequence_classification" and arch.endswith("ForSequenceClassification"):
            # vLLM builds a sequence classifier from the causal LM it implements.
            return arch.replace("ForSequenceClassification", "ForCausalLM") in supported
    return False


Backend = Literal["auto", "vllm", "transformers", "remote"]


class ModelBacked:
    """What families with their own reward model share: the scorer and its name."""

    head: Head
    scorer: Scorer

    def load_model(
        self,
        model: str | Path | None,
        *,
        device: str | None = None,
        max_batch: int = 16,
        trust_remote_code: bool = False,
        backend: Backend = "auto",
        gpu_memory_utilization: float | None = None,
        url: str | None = None,
        api_key: str | None = None,
    ) -> None:
        if model is None:
            raise VerifierError(f"{type(self).__name__} needs a local model folder (`model`)")
        path = Path(model).expanduser()
        if not (path / "config.json").is_file():
            raise VerifierError(f"verifier model folder has no config.json: {path}")
        if backend == "remote":
            logger.info("scoring with %s on the vLLM pooling server at %s", path.name, url)
            self.scorer = _scorer_class("remote")(
                path, self.head, url=url, max_batch=max_batch, api_key=api_key
            )
            return
        if backend == "vllm" or (backend == "auto" and vllm_supports(path, self.head)):
            logger.info("running %s on vLLM's pooling runner", path.name)
            self.scorer = _scorer_class("vllm")(
                path,
                self.head,
                max_batch=max_batch,
                gpu_memory_utilization=gpu_memory_utilization,
            )
            return
        self.scorer = _scorer_class("transformers")(
            path,
            self.head,
            device=device,
            max_batch=max_batch,
            trust_remote_code=trust_remote_code,
        )

    def shutdown(self) -> None:
        self.scorer.shutdown()

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
