"""Reward models on vLLM's pooling runner, in an engine of their own beside the policy's.

Where vLLM implements the architecture (Qwen2.5-Math-PRM's `Qwen2ForProcessRewardModel`, and
sequence classifiers built on a causal LM it supports), the reward model gets vLLM's batching and
kernels, and on a GPU its own explicit share of memory. The interface matches
`TransformersScorer` (the `Scorer` protocol), so a family does not know which one runs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ponder.core.vllm_compat import input_error_types, tokens_prompt

from .base import VerifierError
from .reward_model import Head, LogitRequest, picked_logits

__all__ = ["VLLMPoolingScorer"]

logger = logging.getLogger(__name__)

_DEFAULT_GPU_SHARE = 0.1
# A reward model's KV cache holds the prompts of one forward pass, not a search's prefixes: the
# least the CPU build takes (whole GiB), whatever the policy engine set for itself.
_POOLING_KV_CACHE_GIB = 1


@contextlib.contextmanager
def _cpu_kv_cache(gib: int) -> Iterator[None]:
    """The CPU build's KV cache size while an engine is built: vLLM reads it from the process
    environment (`VLLM_CPU_KVCACHE_SPACE`) when it makes the engine's config and starts its
    core, and the policy engine of this process has set it for its own, larger cache."""
    before = os.environ.get("VLLM_CPU_KVCACHE_SPACE")
    os.environ["VLLM_CPU_KVCACHE_SPACE"] = str(gib)
    try:
        yield
    finally:
        if before is None:
            del os.environ["VLLM_CPU_KVCACHE_SPACE"]
        else:
            os.environ["VLLM_CPU_KVCACHE_SPACE"] = before


class VLLMPoolingScorer:
    def __init__(
        self,
        path: Path,
        head: Head,
        *,
        max_batch: int = 16,
        gpu_memory_utilization: float | None = None,
    ) -> None:
        from transformers import AutoTokenizer
        from vllm.config import PoolerConfig
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.platforms import current_platform
        from vllm.v1.engine.async_llm import AsyncLLM

        if head == "causal_lm":
            raise VerifierError("vLLM's pooling runner does not read LM logits; use transformers")
        self.path = path
        self.head = head
        cpu = bool(current_platform.is_cpu())
        self.device = "cpu" if cpu else "cuda"
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        # Every token's logits: recipes pick their own positions (vLLM's STEP pooling would need
        # the step token configured per model).
        pooler = PoolerConfig(tok_pooling_type="ALL") if head == "token_classification" else None
        args = AsyncEngineArgs(
            model=str(path),
            runner="pooling",
            pooler_config=pooler,
            enforce_eager=cpu,
            max_num_seqs=max_batch,
            gpu_memory_utilization=gpu_memory_utilization or _DEFAULT_GPU_SHARE,
            disable_log_stats=True,
        )
        with _cpu_kv_cache(_POOLING_KV_CACHE_GIB) if cpu else contextlib.nullcontext():
            self._llm = AsyncLLM.from_engine_args(args)
        self._task: Any = "token_classify" if head == "token_classification" else "classify"

    @property
    def parameter_bytes(self) -> int:
        # The engine holds its own share, checked by vLLM itself at start-up.
        return 0

    async def _one(self, request: LogitRequest) -> Any:
        from vllm import PoolingParams

        params = PoolingParams(task=self._task, use_activation=False)
        output = None
        try:
            async for partial in self._llm.encode(
                tokens_prompt(request.token_ids), params, uuid.uuid4().hex
            ):
                output = partial
        except input_error_types() as exc:
            # vLLM checks input as a request is added, raising its validation error for most
            # checks and plain ValueErrors or TypeErrors for some: the request's fault, a 400.
            raise VerifierError(f"the reward model refused the input: {exc}") from exc
        if output is None:
            raise VerifierError("the reward model returned nothing")
        return picked_logits(output.outputs.data.float().cpu(), self.head, request)

    async def logits(self, requests: Sequence[LogitRequest]) -> list[Any]:
        # Submitted together, they are scheduled as one batch by vLLM.
        return list(await asyncio.gather(*(self._one(r) for r in requests)))

    def shutdown(self) -> None:
        self._llm.shutdown()
