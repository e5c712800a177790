"""Start-up: build the verifiers a server runs, and check they fit on the GPU beside the policy.

The verifiers that need no model are always loaded; model-backed ones come from the server's
settings, each with exactly the options its family takes (`options.py`). On a GPU every engine
and model gets an explicit share of memory, and a set of shares that cannot fit is refused before
anything is loaded, with a message that names the numbers.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from ponder.core.engine import Engine

from .base import Verifier, VerifierError
from .options import checked_options, takes_engine
from .registry import DEFAULT_VERIFIERS, verifier_class

__all__ = [
    "GPU_HEADROOM",
    "VerifierConfig",
    "check_gpu_shares",
    "check_verifier_specs",
    "load_configured_verifiers",
]

logger = logging.getLogger(__name__)

# What the CUDA context, allocator fragmentation and activations need beyond the shares.
GPU_HEADROOM = 0.05


class VerifierConfig(Protocol):
    """What start-up needs of a configured verifier (the server's `VerifierSpec`)."""

    name: str
    family: str
    device: str | None
    gpu_memory_utilization: float | None

    def model_dump(self, *, exclude_unset: bool = False) -> dict[str, Any]: ...


def _on_gpu(device: str | None) -> bool:
    if device is not None:
        return device.startswith("cuda")
    import torch

    return bool(torch.cuda.is_available())


def _gpu_index(device: str | None) -> int:
    """The GPU a verifier's device names (`cuda` and the default are the current one, 0)."""
    _, _, index = (device or "cuda").partition(":")
    return int(index) if index.isdigit() else 0


def check_gpu_shares(
    policy_share: float, specs: Sequence[VerifierConfig], *, policy_gpus: int = 1
) -> None:
    """Refuse shares of GPU memory that add up to more than a GPU (less some headroom).

    The policy engine takes `policy_share` of each of its `policy_gpus` GPUs (0 to
    policy_gpus - 1: tensor x pipeline x data parallel); a verifier takes its share of the one
    GPU its device names. Each GPU is checked on its own.
    """
    on_gpu = [s for s in specs if _on_gpu(s.device)]
    missing = [s.name for s in on_gpu if s.gpu_memory_utilization is None]
    if missing:
        raise VerifierError(
            f"verifiers on a GPU need an explicit gpu_memory_utilization: {', '.join(missing)}"
        )
    for gpu in sorted({_gpu_index(s.device) for s in on_gpu}):
        here = [s for s in on_gpu if _gpu_index(s.device) == gpu]
        policy_here = policy_share if gpu < policy_gpus else 0.0
        total = policy_here + sum(s.gpu_memory_utilization or 0.0 for s in here)
        if total > 1.0 - GPU_HEADROOM:
            shares = ", ".join(f"{s.name} {s.gpu_memory_utilization:g}" for s in here)
            raise VerifierError(
                f"GPU {gpu} memory shares add up to {total:.2f} (policy {policy_here:g}, "
                f"{shares}); they must stay under {1.0 - GPU_HEADROOM:.2f}: lower "
                "--gpu-memory-utilization or the verifiers' shares, or move a verifier to a GPU "
                "the policy does not use"
            )


def _check_fits(verifier: Any, spec: VerifierConfig) -> None:
    scorer = getattr(verifier, "scorer", None)
    if scorer is None or not scorer.device.startswith("cuda"):
        return
    import torch

    total = torch.cuda.get_device_properties(torch.device(scorer.device)).total_memory
    allowed = (spec.gpu_memory_utilization or 0.0) * total
    if scorer.parameter_bytes > allowed:
        raise VerifierError(
            f"verifier {spec.name!r} needs {scorer.parameter_bytes / 2**30:.1f} GiB for its "
            f"weights but its share is {allowed / 2**30:.1f} GiB"
        )


def _family(spec: VerifierConfig) -> Any:
    try:
        return verifier_class(spec.family)
    except KeyError as exc:
        raise VerifierError(str(exc.args[0])) from None


def _options(spec: VerifierConfig) -> dict[str, Any]:
    """The options the operator set on `spec`, checked against what its family takes."""
    given = {k: v for k, v in spec.model_dump(exclude_unset=True).items() if k != "family"}
    return checked_options(_family(spec), {"name": spec.name, **given})


def check_verifier_specs(specs: Iterable[VerifierConfig]) -> None:
    """Refuse unknown families, duplicate names and options a family does not take, before
    anything (the engine included) is started."""
    names = set(DEFAULT_VERIFIERS)
    for spec in specs:
        if spec.name in names:
            raise VerifierError(f"two verifiers are named {spec.name!r}")
        names.add(spec.name)
        _options(spec)


def _build(cls: Any, engine: Engine, options: dict[str, Any]) -> Verifier:
    verifier: Verifier = cls(engine=engine, **options) if takes_engine(cls) else cls(**options)
    return verifier


def load_configured_verifiers(
    engine: Engine,
    specs: Iterable[VerifierConfig] = (),
    *,
    policy_gpu_share: float = 0.0,
    defaults: Iterable[str] = DEFAULT_VERIFIERS,
) -> dict[str, Verifier]:
    specs = list(specs)
    check_gpu_shares(policy_gpu_share, specs)
    loaded: dict[str, Verifier] = {}
    for name in defaults:
        loaded[name] = _build(verifier_class(name), engine, {"name": name})
    for spec in specs:
        if spec.name in loaded:
            raise VerifierError(f"two verifiers are named {spec.name!r}")
        options = _options(spec)
        logger.info("loading verifier %s (%s)", spec.name, spec.family)
        verifier = _build(_family(spec), engine, options)
        _check_fits(verifier, spec)
        loaded[spec.name] = verifier
    return loaded
