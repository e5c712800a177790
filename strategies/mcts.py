"""`mcts`: step-level Monte Carlo tree search (rStar, llm-reasoners' MCTS) over the search core.

Beam search commits to a level at a time; MCTS spends its budget where the values say the answer
is, and comes back to branches it under-explored. Each simulation selects a leaf by PUCT, expands
it `expansions` ways in one engine call, values the new children in one verifier call (their
verifier scores, or the scores of greedy rollouts to a final answer) and backs the values up.

Two choices the literature leaves open, and why we made them:

- The prior P is uniform over a node's children (1/k; 1/len(children) if the budget trimmed an
  expansion) unless `confidence_weight` asks for the policy's confidence in each step, read from
  the expansion call's log-probs: then that share of P is in proportion to the siblings'
  confidences (values.py's `confidence_prior`). The verifier's score is never the prior: its
  opinion already enters through Q (every new child is backed up at once), and using it as the
  prior too would count it twice. With the `confidence` verifier, Q is the confidence itself.
- Every new child's value is backed up, each along its own path: a child starts with one visit
  and its value, and its ancestors gain one visit and that value per child. So a node's Q is the
  mean value of everything evaluated below it, N(parent) counts those evaluations, and a branch
  is not made to look certain by its single best child (backing up only the maximum would).

Values come from the search core (values.py): `VerifierScore` or `RolloutScore`. Rollout steps
are real nodes of the tree (`rollout_of` set; the trace marks them `rollout` and shows their
tokens) but not part of the search: selection and the final walk by visits pass over them, except
that a leaf's rollout is how the walk reaches a finished answer below an unexpanded leaf.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from pydantic import Field

from .base import Strategy, StrategyParams, StrategyResult
from .context import StrategyContext
from .progress import best_score
from .search import Node, SearchParams, SearchTree
from .values import RolloutScore, SearchValue, VerifierScore, confidence_prior

__all__ = ["MCTS", "MCTSParams"]


class MCTSParams(SearchParams):
    simulations: int = Field(8, ge=1, le=128, description="Simulations (select, expand, back up).")
    expansions: int = Field(
        3, ge=1, le=16, description="Children sampled, in one engine call, per expanded node."
    )
    c_puct: float = Field(
        1.0, gt=0, le=100, description="Exploration weight of the PUCT rule (higher explores)."
    )
    value: Literal["prm", "rollout"] = Field(
        "prm",
        description="A new node's value: its verifier score (prm), or the verifier's score of a "
        "greedy rollout from it to a final answer (rollout; outcome verifiers work too).",
    )
    final: Literal["visits", "value"] = Field(
        "visits",
        description="The answer: the most visited path (visits) or the best-valued finished "
        "solution (value).",
    )

    def candidates(self) -> int:
        return self.simulations * self.expansions


@dataclass
class Statistics:
    """What MCTS knows of a searched node: N, the evaluations backed up through it, and W, the
    sum of their values (the trace's "value"); Q is W / N."""

    visits: int = 0
    value: float = 0.0

    def mean(self) -> float | None:
        return self.value / self.visits if self.visits else None


class MCTS(Strategy):
    name: ClassVar[str] = "mcts"
    description: ClassVar[str] = (
        "Step-level Monte Carlo tree search: PUCT selection; PRM or rollout values."
    )
    Params: ClassVar[type[StrategyParams]] = MCTSParams
    params: MCTSParams

    def planned_tokens(self, max_tokens: int, choices: int) -> int:
        # Every simulation expands at most one node into k children of at most one step each.
        # A rollout extends a child to at most max_steps steps in all, and no path outgrows
        # max_tokens, so child plus rollout is within `bounds.steps(max_steps)`. Worst case:
        # simulations * k * that per-child bound.
        p = self.params
        bounds = p.bounds(max_tokens)
        per_child = bounds.steps(p.max_steps) if p.value == "rollout" else bounds.step
        return p.simulations * p.expansions * per_child

    async def run(self, ctx: StrategyContext) -> StrategyResult:
        p = self.params
        search = _Simulations(SearchTree(ctx, p), p)
        simulations = await search.run()
        candidates = search.ranked()
        details: dict[str, Any] = {
            "verifier": search.tree.verifier.name,
            **search.tree.guidance(),
            "simulations": simulations,
        }
        if p.return_trace:
            details["selected"] = search.selected
            details["tree"] = search.tree.trace(search.labels)
        return StrategyResult(
            [n.candidate() for n in candidates], list(range(len(candidates))), details
        )


class _Simulations:
    """One request's search: the tree, what MCTS knows of each searched node, and the nodes
    each simulation selected."""

    def __init__(self, tree: SearchTree, params: MCTSParams) -> None:
        self.tree = tree
        self.params = params
        self.value_of: SearchValue = (
            RolloutScore() if params.value == "rollout" else VerifierScore()
        )
        self.stats: dict[Node, Statistics] = {tree.root: Statistics()}
        self.expanded: set[Node] = set()
        self.selected: list[int] = []

    async def run(self) -> int:
        """Simulate until `simulations`, the tree or the budget runs out; the simulations run."""
        p, budget = self.params, self.tree.ctx.budget
        simulations = 0
        while simulations < p.simulations and not budget.past_deadline():
            if not any(self._open(n) for n in self.tree.nodes):
                break  # every leaf is finished: more simulations would only recount them
            if not self.tree.by_confidence and not budget.fit_verifier_calls(1):
                break  # new nodes could not be valued: expanding them would waste tokens
            leaf = self._select()
            self.selected.append(leaf.id)
            if leaf.terminal:
                # A finished solution cannot be expanded; its value is counted again, which is
                # how MCTS grows its confidence in a good answer.
                if leaf.score is None:
                    break
                self._backup(leaf, leaf.score)
                simulations += 1
                self._report(simulations)
                continue
            (children,) = await self.tree.expand([leaf], p.expansions)
            self.expanded.add(leaf)
            if not children:
                break  # the budget ran out: return the best so far
            for child in children:
                self.stats[child] = Statistics()
            values = await self.value_of(self.tree, children)
            for child, value in zip(children, values, strict=True):
                if value is not None:
                    self._backup(child, value)
            simulations += 1
            self._report(simulations)
            if any(v is None for v in values):
                break  # the verifier budget or the deadline ran out: nothing more can be valued
        return simulations

    def _report(self, simulations: int) -> None:
        """Progress after a simulation: the leaves the search can still grow or has finished."""
        nodes = [n for n in self.tree.nodes[1:] if n.rollout_of is None]
        alive = sum(1 for n in nodes if n.terminal or self._open(n))
        best = best_score(n.score for n in nodes)
        ctx = self.tree.ctx
        ctx.report_progress(
            MCTS.name, "simulation", simulations, self.params.simulations, alive, best
        )

    def labels(self, node: Node) -> dict[str, Any]:
        """A searched node's statistics, or the mark of a rollout step, for the trace."""
        if node.rollout_of is not None:
            return {"rollout": True}
        stats = self.stats.get(node)
        if stats is None:
            return {}
        labels: dict[str, Any] = {"visits": stats.visits, "value": stats.value}
        if self.tree.params.confidence_weight and node is not self.tree.root:
            labels["confidence"] = self.tree.confidence(node)
        return labels

    def _visits(self, node: Node) -> int:
        stats = self.stats.get(node)
        return stats.visits if stats is not None else 0

    def _mean(self, node: Node) -> float | None:
        """Q; a rollout step, never backed up, has its verifier score."""
        stats = self.stats.get(node)
        mean = stats.mean() if stats is not None else None
        return node.score if mean is None else mean

    def _open(self, node: Node) -> bool:
        return not node.terminal and node not in self.expanded and node.rollout_of is None

    def _select(self) -> Node:
        """Descend by PUCT while the node is expanded and unfinished; ties go to the lower id."""
        node = self.tree.root
        while node in self.expanded and not node.terminal:
            # The children the search itself made (not rollout steps).
            children = [c for c in node.children if c.rollout_of is None]
            if not children:
                break
            # PUCT: Q + c * P * sqrt(N) / (1 + n), P as the module docstring says; Q is 0 for
            # a child no value reached yet.
            exploration = self.params.c_puct * math.sqrt(self._visits(node))
            priors = confidence_prior(self.tree, children)
            scores = [
                (self.stats[c].mean() or 0.0) + exploration * prior / (1 + self._visits(c))
                for c, prior in zip(children, priors, strict=True)
            ]
            best = max(scores)
            node = children[scores.index(best)]  # the first best: children are in id order
        return node

    def _backup(self, node: Node, value: float) -> None:
        for ancestor in node.path():
            stats = self.stats[ancestor]
            stats.visits += 1
            stats.value += value

    def ranked(self) -> list[Node]:
        """Finished solutions (or, if none, the leaves) best first, by `final`."""
        nodes = self.tree.nodes[1:]
        pool = [n for n in nodes if n.terminal] or [n for n in nodes if not n.children]
        if self.params.final == "value":
            # Unvalued solutions (the budget left them unscored) rank last; ties: lower id.
            def by_value(n: Node) -> tuple[bool, float, int]:
                mean = self._mean(n)
                return mean is None, -(mean or 0.0), n.id

            return sorted(pool, key=by_value)
        # Depth-first from the root, most visited child first (then higher Q, lower id): the first
        # solution met is the end of the most visited path; where that path ends at an unfinished
        # leaf, its rollout (visited after the searched children) or the next branch follows.
        wanted = {n.id for n in pool}
        order: list[Node] = []
        stack = [self.tree.root]
        while stack:
            node = stack.pop()
            if node.id in wanted:
                order.append(node)
            children = sorted(
                node.children, key=lambda c: (-self._visits(c), -(self._mean(c) or 0.0), c.id)
            )
            stack.extend(reversed(children))
        return order
