"""What the benchmark scripts share: problems, and Ponder's server on an in-process engine."""

from __future__ import annotations

import os
import random
import signal
import sys

from ponder.evaluation.local import served

__all__ = ["addition_problems", "exit_on_sigterm", "served", "share_gpu"]


def share_gpu(share: float | None) -> None:
    """On a GPU, give each engine this process starts (Ponder's in-process one reads the `PONDER_`
    variables) `share` of the GPU's memory, so that it fits beside a `vllm serve`, and run it eager
    as the `vllm serve` of tests/integration/remote_servers.py runs: both sides alike."""
    if share is not None:
        os.environ["PONDER_GPU_MEMORY_UTILIZATION"] = str(share)
        os.environ["PONDER_ENFORCE_EAGER"] = "true"


def addition_problems(count: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [
        f"What is {rng.randint(10, 99)} + {rng.randint(10, 99)}? Reply with only the final number."
        for _ in range(count)
    ]


def exit_on_sigterm() -> None:
    """Make a `timeout`'s SIGTERM unwind the context managers, so that no server a benchmark
    started (in its own session, out of reach of a process-group kill) outlives it."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
