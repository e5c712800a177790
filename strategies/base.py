"""The strategy base: its parameters' common part, the strategy class and what a run returns.

A strategy is a params model (the request's `tts` object, validated) and `run`, which explores
candidates through a `StrategyContext` (context.py) within a `Budget` (budget.py) and ranks them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from ponder.core.engine import GeneratedSequence
from ponder.core.reasoning import ThinkingBudget
from ponder.verifiers.base import Aggregation, ScoringOptions, StepScore

from .budget import BudgetParams
from .context import StrategyContext

__all__ = ["RankedCandidate", "Strategy", "StrategyParams", "StrategyResult"]


class StrategyParams(BaseModel):
    """Fields every strategy accepts in the request's `tts` object; strategies subclass this."""

    model_config = ConfigDict(extra="forbid")

    strategy: str = Field("none", description="Registered strategy name.")
    budget: BudgetParams = Field(default_factory=BudgetParams)
    return_trace: bool = Field(False, description="Return every candidate explored.")
    step_delimiter: str = Field(
        "\n\n", min_length=1, max_length=32, description="Text that ends a reasoning step."
    )
    aggregation: Aggregation | None = Field(
        None,
        description="How step scores become one (min, last, prod, mean); default: per verifier.",
    )
    reference: str | None = Field(
        None, max_length=1000, description="The known answer, for the reference verifier."
    )
    thinking_budget: int | None = Field(
        None,
        ge=0,
        description="Reasoning models: most thinking tokens per candidate; at the cap the "
        "thinking is ended and the candidate answers (budget forcing). Needs --reasoning-parser.",
    )
    min_thinking_tokens: int = Field(
        0,
        ge=0,
        description="Reasoning models: fewest thinking tokens per candidate; an earlier end of "
        "thinking is replaced by 'Wait' and continued (budget forcing).",
    )

    def scoring(self) -> ScoringOptions:
        return ScoringOptions(
            aggregation=self.aggregation,
            step_delimiter=self.step_delimiter,
            reference=self.reference,
        )

    def candidates(self) -> int:
        """Candidates this request explores at most (checked against the server's cap)."""
        return 1

    def thinking(self) -> ThinkingBudget | None:
        """The per-candidate thinking budget asked for, if any."""
        budget = ThinkingBudget(self.thinking_budget, self.min_thinking_tokens)
        return budget if budget.active else None

    def verifier_names(self) -> dict[str, str]:
        """The verifiers this request will use, by the `tts` field that names them."""
        return {}

    def top_logprobs_needed(self) -> dict[str, int]:
        """Alternatives per token the strategy itself asks the engine for, by the `tts` field
        that sets how many (its verifiers declare their own)."""
        return {}


@dataclass(frozen=True)
class RankedCandidate:
    """One explored candidate as the response and trace report it."""

    sequence: GeneratedSequence
    score: float | None = None
    answer: str | None = None
    step_scores: tuple[StepScore, ...] | None = None


@dataclass
class StrategyResult:
    candidates: list[RankedCandidate]
    # Indices into `candidates`, best first; the response returns the first `choices` of them.
    ranking: list[int]
    details: dict[str, Any] = field(default_factory=dict)


class Strategy(ABC):
    """Base of all strategies: a name, a description, a params model and `run`."""

    name: ClassVar[str]
    description: ClassVar[str]
    Params: ClassVar[type[StrategyParams]] = StrategyParams

    def __init__(self, params: StrategyParams) -> None:
        self.params = params

    def candidates(self) -> int:
        """Candidates this request explores at most (checked against the server's cap)."""
        return self.params.candidates()

    def planned_tokens(self, max_tokens: int, choices: int) -> int:
        """Worst-case policy tokens for the server's cap; strategies with more work override."""
        return max(self.candidates(), choices) * max_tokens

    # Plain decoding: the request's `n` choices are the samples themselves (no search).
    choices_are_samples: ClassVar[bool] = False
    # Every candidate is sampled whole from the prompt (never continued from a partial answer,
    # never a critique or a merge), so a structured-output grammar can constrain each one.
    samples_whole_answers: ClassVar[bool] = False

    def needs_diverse_samples(self) -> bool:
        """Whether this request draws several samples of one prompt that must differ, so that a
        temperature of 0 cannot serve it; strategies that sample one at a time override."""
        return self.candidates() > 1

    @abstractmethod
    async def run(self, ctx: StrategyContext) -> StrategyResult:
        """Explore candidates through `ctx` and rank them."""
