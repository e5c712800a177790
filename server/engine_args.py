"""The policy engine's vLLM arguments from the settings, and the combinations that cannot work.

Kept apart from `vllm_engine.py` so that what reaches `AsyncEngineArgs` (parallelism above all:
tensor, pipeline and data parallel sizes and the executor backend, which cannot be exercised
without GPUs) is a plain dict that unit tests read, and so that a conflict is refused with a
message naming the flags before a minute is spent starting vLLM.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from .settings import Settings

__all__ = [
    "EngineSettingsError",
    "ParallelismError",
    "check_parallelism",
    "confidence_stop_args",
    "policy_engine_args",
    "policy_gpus",
]

_CPU_BLOCK_SIZE = 32


class EngineSettingsError(ValueError):
    """The settings ask for an engine that vLLM cannot run (the message says why)."""


class ParallelismError(EngineSettingsError):
    """The settings ask for a parallel layout that vLLM cannot run."""


def policy_gpus(settings: Settings) -> int:
    """How many GPUs the in-process policy engine spans (each takes gpu_memory_utilization)."""
    return (
        settings.tensor_parallel_size
        * settings.pipeline_parallel_size
        * settings.data_parallel_size
    )


def check_parallelism(settings: Settings) -> None:
    """Refuse parallel settings that conflict with each other or with the chosen engine."""
    world = settings.tensor_parallel_size * settings.pipeline_parallel_size
    if settings.engine == "remote" and (
        policy_gpus(settings) > 1 or settings.distributed_executor_backend is not None
    ):
        raise ParallelismError(
            "--tensor/pipeline/data-parallel-size and --distributed-executor-backend configure "
            "the in-process engine; with --engine remote the vLLM servers own their "
            "parallelism (start them with those flags)"
        )
    backend = settings.distributed_executor_backend
    if backend == "uni" and world > 1:
        raise ParallelismError(
            f"--distributed-executor-backend uni runs one worker, but tensor x pipeline "
            f"parallel size is {world}: use mp (one node) or ray (several nodes)"
        )
    if backend == "external_launcher" and settings.data_parallel_size > 1:
        raise ParallelismError(
            "--distributed-executor-backend external_launcher runs one engine per launched "
            "process: launch data-parallel ranks with torchrun instead of --data-parallel-size"
        )
    if backend == "ray" and importlib.util.find_spec("ray") is None:
        raise ParallelismError(
            "--distributed-executor-backend ray needs Ray installed (pip install ray) and this "
            "process started on a Ray cluster's head node"
        )


def policy_engine_args(
    settings: Settings, model_path: str, model_name: str, *, cpu: bool
) -> dict[str, Any]:
    """Keyword arguments of vLLM's `AsyncEngineArgs` for the policy model."""
    check_parallelism(settings)
    enforce_eager = settings.enforce_eager if settings.enforce_eager is not None else cpu
    args: dict[str, Any] = {
        "model": model_path,
        "served_model_name": [model_name],
        "max_model_len": settings.max_model_len,
        "enable_prefix_caching": True,
        "enforce_eager": enforce_eager,
        # Short prefixes hit the cache on CPU with smaller blocks than vLLM's default there.
        "block_size": settings.block_size or (_CPU_BLOCK_SIZE if cpu else None),
        "dtype": settings.dtype,
        "gpu_memory_utilization": settings.gpu_memory_utilization,
        "tensor_parallel_size": settings.tensor_parallel_size,
        "pipeline_parallel_size": settings.pipeline_parallel_size,
        "data_parallel_size": settings.data_parallel_size,
        "max_logprobs": settings.max_logprobs,
        "disable_log_stats": False,
    }
    if settings.max_num_seqs is not None:
        args["max_num_seqs"] = settings.max_num_seqs
    if settings.max_num_batched_tokens is not None:
        args["max_num_batched_tokens"] = settings.max_num_batched_tokens
    if settings.distributed_executor_backend is not None:
        args["distributed_executor_backend"] = settings.distributed_executor_backend
    if cpu:
        args.update(_cpu_whole_prompts(settings))
    args.update(confidence_stop_args())
    return args


def _cpu_whole_prompts(settings: Settings) -> dict[str, Any]:
    """No chunked prefill on the CPU build: it killed the engine on seeded requests.

    When a prompt is prefilled in chunks, vLLM (0.32) rewinds the request's random generator
    after each chunk, which a CPU generator cannot do ("CPU Generator does not use offset"): the
    worker raises and the engine core stops. One seeded prompt longer than a step's token budget
    did it, or many seeded prompts arriving together. With whole prompts per step vLLM raises the
    step's token budget to max_model_len, so that any prompt fits.
    """
    budget = settings.max_num_batched_tokens
    if budget is not None and budget < settings.max_model_len:
        raise EngineSettingsError(
            f"--max-num-batched-tokens ({budget}) must be at least --max-model-len "
            f"({settings.max_model_len}) on the CPU build, which prefills whole prompts (vLLM's "
            "CPU build fails on seeded requests whose prompt is prefilled in chunks)"
        )
    return {"enable_chunked_prefill": False}


def confidence_stop_args() -> dict[str, Any]:
    """The logits processor and worker extension that stop DeepConf's traces inside the engine
    (`vllm_confidence_stop.py`), where this vLLM takes custom logits processors (V1, 0.10.2 on);
    without them the strategy stops traces by aborting them, some tokens late."""
    try:
        # The engine core loads it from the same vLLM: if its logits-processor interface is
        # missing here, asking for it there would stop the engine from starting.
        from .vllm_confidence_stop import EXTENSION, PROCESSOR
    except ImportError:
        return {}
    return {"logits_processors": [PROCESSOR], "worker_extension_cls": EXTENSION}
