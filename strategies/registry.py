"""Strategy names mapped to lazily imported classes.

A request names its strategy; nothing is imported until a strategy is first used, so adding one is
a new file and one line here.
"""

from __future__ import annotations

import importlib
from functools import cache

from ponder.core.errors import StrategyInputError

from .base import Strategy

__all__ = ["STRATEGIES", "strategy_class"]

STRATEGIES: dict[str, str] = {
    "none": "ponder.strategies.none:PlainDecoding",
    "best_of_n": "ponder.strategies.best_of_n:BestOfN",
    "self_consistency": "ponder.strategies.self_consistency:SelfConsistency",
    "beam_search": "ponder.strategies.beam_search:BeamSearch",
    "prm_beam_search": "ponder.strategies.prm_beam_search:PrmBeamSearch",
    "mcts": "ponder.strategies.mcts:MCTS",
    "tree_of_thoughts": "ponder.strategies.tree_of_thoughts:TreeOfThoughts",
    "graph_of_thoughts": "ponder.strategies.graph_of_thoughts:GraphOfThoughts",
    "rsa": "ponder.strategies.rsa:RecursiveSelfAggregation",
    "self_refine": "ponder.strategies.self_refine:SelfRefine",
    "compute_optimal": "ponder.strategies.compute_optimal:ComputeOptimal",
    "deepconf": "ponder.strategies.deepconf:DeepConf",
}


@cache
def strategy_class(name: str) -> type[Strategy]:
    try:
        target = STRATEGIES[name]
    except KeyError:
        known = ", ".join(sorted(STRATEGIES))
        raise StrategyInputError(
            f"unknown strategy {name!r}; known strategies: {known}", "tts.strategy"
        ) from None
    module_name, _, attr = target.partition(":")
    cls: type[Strategy] = getattr(importlib.import_module(module_name), attr)
    return cls
