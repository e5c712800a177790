"""Strategies: how a request spends test-time compute. One file each, resolved by name.

The shared parts, by what they are: `base` (params, strategy, result), `budget`, `usage`,
`context` (the run's door to the engine and verifiers), `search` and `values` (the step-level
search core), `registry` and `factory` (names to strategies).
"""

from ponder.core.errors import StrategyInputError

from .base import RankedCandidate, Strategy, StrategyParams, StrategyResult
from .budget import Budget, BudgetParams, BudgetReason
from .context import ReusableSamples, StrategyContext, Verdicts
from .registry import STRATEGIES, strategy_class
from .usage import Usage

__all__ = [
    "STRATEGIES",
    "Budget",
    "BudgetParams",
    "BudgetReason",
    "RankedCandidate",
    "ReusableSamples",
    "Strategy",
    "StrategyContext",
    "StrategyInputError",
    "StrategyParams",
    "StrategyResult",
    "Usage",
    "Verdicts",
    "strategy_class",
]
