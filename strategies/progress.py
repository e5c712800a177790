"""What a running strategy tells a streamed request's client before it is done.

A search may run for seconds before it knows its answer. So that a streamed request shows the
search while it runs, a strategy reports each step it reaches (`SearchProgress`, through
`StrategyContext.report_progress`), and a strategy whose answer is settled before the end says so
(`EarlyAnswer`, through `StrategyContext.announce`). The server turns them into stream chunks;
for a request that is not streamed nobody listens and both calls do nothing. This layer only
states what happened: how often it is sent, and on what wire, is the server's business.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ponder.core.engine import GeneratedSequence

__all__ = [
    "AnswerObserver",
    "EarlyAnswer",
    "ProgressObserver",
    "SearchProgress",
    "best_score",
]


@dataclass(frozen=True)
class SearchProgress:
    """Where a search stands after one of its steps (a level, a simulation, a round, a phase)."""

    # The strategy that reports: compute_optimal's chosen option reports under its own name.
    strategy: str
    # What the step was: "level", "simulation", "sample", "score", "round", "probe", ...
    phase: str
    # Steps done so far (1 after the first), and the most the search will take (None: unknown).
    step: int
    max_steps: int | None
    # Candidates (partial or finished) the search still considers, and the best score among
    # those scored so far (None: nothing scored, or the strategy does not score).
    candidates_alive: int
    best_score: float | None
    # The request's policy tokens so far, and its token budget (None: no budget was set).
    completion_tokens: int
    token_budget: int | None


@dataclass(frozen=True)
class EarlyAnswer:
    """An answer that nothing the strategy still does can change: `choice` of the response
    (0 is the best) will be `sequence`, so the server may stream it at once."""

    choice: int
    sequence: GeneratedSequence


ProgressObserver = Callable[[SearchProgress], None]
AnswerObserver = Callable[[EarlyAnswer], None]


def best_score(scores: Iterable[float | None]) -> float | None:
    """The highest of the scores given so far; None when none is."""
    given = [s for s in scores if s is not None]
    return max(given) if given else None
