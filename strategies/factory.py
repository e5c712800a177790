"""Building a strategy with what it needs beyond its parameters.

Most strategies need only their validated `tts` parameters. `compute_optimal` also needs the
server's policy table; it gets the table from here, so neither the strategy base nor the server's
planner has to know which strategy reads what. The table is asked for only when it is needed,
since asking may read a file that changed.
"""

from __future__ import annotations

from collections.abc import Callable

from .base import Strategy, StrategyParams
from .compute_optimal import ComputeOptimal
from .policy import PolicyTable, default_policy
from .registry import strategy_class

__all__ = ["build_strategy"]

PolicySource = Callable[[], PolicyTable]

# Strategies built with more than their parameters, by name.
_BUILDERS: dict[str, Callable[[StrategyParams, PolicySource], Strategy]] = {
    "compute_optimal": lambda params, policy: ComputeOptimal(params, policy()),
}


def build_strategy(params: StrategyParams, *, policy: PolicySource = default_policy) -> Strategy:
    """The strategy that `params.strategy` names, built with what it needs."""
    builder = _BUILDERS.get(params.strategy)
    if builder is not None:
        return builder(params, policy)
    return strategy_class(params.strategy)(params)
