"""What a request made the engine and verifiers do, summed for the response, trace and metrics."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ponder.core.engine import Generation

__all__ = ["Usage"]


@dataclass
class Usage:
    """Everything a request made the engine and verifiers do."""

    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    engine_calls: int = 0
    verifier_calls: int = 0
    verifier_tokens: int = 0
    verifier_cache_hits: int = 0

    @classmethod
    def total(cls, usages: Iterable[Usage]) -> Usage:
        """Field by field sum: one request's usage over its prompts."""
        summed = cls()
        for usage in usages:
            for f in dataclasses.fields(cls):
                setattr(summed, f.name, getattr(summed, f.name) + getattr(usage, f.name))
        return summed

    def add_generations(self, generations: Sequence[Generation]) -> None:
        self.engine_calls += 1
        for g in generations:
            self.prompt_tokens += g.prompt_tokens
            self.cached_tokens += g.cached_tokens
            self.completion_tokens += g.generated_tokens
