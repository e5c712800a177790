"""What the benchmark scripts share: problems, and Ponder's server on an in-process engine."""

from __future__ import annotations

import random

from ponder.evaluation.local import served

__all__ = ["addition_problems", "served"]


def addition_problems(count: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [
        f"What is {rng.randint(10, 99)} + {rng.randint(10, 99)}? Reply with only the final number."
        for _ in range(count)
    ]
