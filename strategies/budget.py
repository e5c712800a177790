"""A request's compute budget: what it may spend (`BudgetParams`) and what it has spent (`Budget`).

Every strategy asks the budget before it generates or scores, through `StrategyContext`, so that a
request stops at its limit wherever the strategy is, and says which limit stopped it.
"""

from __future__ import annotations

import time
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Budget", "BudgetParams", "BudgetReason"]

BudgetReason = Literal["tokens", "verifier_calls", "deadline"]


class BudgetParams(BaseModel):
    """A request's compute budget; strategies stop and return the best so far when it runs out."""

    model_config = ConfigDict(extra="forbid")

    max_tokens: int | None = Field(
        None, ge=1, description="Most policy tokens the request may generate, all candidates."
    )
    max_verifier_calls: int | None = Field(
        None, ge=0, description="Most candidates (or steps) the verifiers may score."
    )
    deadline_s: float | None = Field(
        None, gt=0, description="Wall-clock seconds after which the best answer so far is returned."
    )


class Budget:
    """Counts what a request spent and says how much more it may spend."""

    def __init__(self, params: BudgetParams, *, started: float | None = None) -> None:
        self.max_tokens = params.max_tokens
        self.max_verifier_calls = params.max_verifier_calls
        start = time.monotonic() if started is None else started
        self.deadline = None if params.deadline_s is None else start + params.deadline_s
        self.tokens_used = 0
        self.verifier_calls = 0
        self.exhausted: BudgetReason | None = None

    def mark(self, reason: BudgetReason) -> None:
        self.exhausted = self.exhausted or reason

    def past_deadline(self) -> bool:
        if self.deadline is not None and time.monotonic() >= self.deadline:
            self.mark("deadline")
            return True
        return False

    def fit_samples(self, prompts: int, n: int, max_tokens: int) -> tuple[int, int]:
        """The (n, max_tokens) that cannot overrun the token budget, worst case; n may be 0."""
        if self.max_tokens is None:
            return n, max_tokens
        remaining = self.max_tokens - self.tokens_used
        if remaining <= 0:
            self.mark("tokens")
            return 0, 0
        fitting = remaining // (prompts * max_tokens)
        if fitting >= n:
            return n, max_tokens
        self.mark("tokens")
        if fitting >= 1:
            return fitting, max_tokens
        per_sequence = remaining // prompts
        return (1, per_sequence) if per_sequence >= 1 else (0, 0)

    def fit_verifier_calls(self, wanted: int) -> int:
        if self.max_verifier_calls is None:
            return wanted
        allowed = max(0, self.max_verifier_calls - self.verifier_calls)
        if allowed < wanted:
            self.mark("verifier_calls")
        return min(wanted, allowed)
