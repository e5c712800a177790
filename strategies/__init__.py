"""Strategies: how a request spends test-time compute. One file each, resolved by name."""

from ponder.core.errors import StrategyInputError

from .base import (
    Budget,
    BudgetParams,
    RankedCandidate,
    Strategy,
    StrategyContext,
    StrategyParams,
    StrategyResult,
    Usage,
)
from .registry import STRATEGIES, strategy_class

__all__ = [
    "STRATEGIES",
    "Budget",
    "BudgetParams",
    "RankedCandidate",
    "Strategy",
    "StrategyContext",
    "StrategyInputError",
    "StrategyParams",
    "StrategyResult",
    "Usage",
    "strategy_class",
]
