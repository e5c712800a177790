"""`mcts`: step-level Monte Carlo tree search (rStar, llm-reasoners' MCTS) over the search core.

Beam search commits to a level at a time; MCTS spends its budget where the values say the answer
is, and comes back to branches it under-explored. Each simulation selects a leaf by PUCT, expands
it `expansions` ways in one engine call, values the new children in one verifier call (their
verifier scores, or the scores of greedy rollouts to a final answer) and backs the values up.

Two choices the literature leaves open, and why we made them:

- The prior P is uniform over a node's children (1/k; 1/len(children) if the budget trimmed an
  expansion). The children are samples from the policy, so the policy's preference is already in
  which steps exist; and the verifier's opinion already enters through Q (every new child is
  backed up at once), so using it as the prior too would count it twice.
- Every new child's value is backed up, each along its own path: a child starts with one visit
  and its value, and its ancestors gain one visit and that value per child. So a node's Q is the
  mean value of everything evaluated below it, N(parent) counts those evaluations, and a branch
  is not made to look certain by its single best child (backing up only the maximum would).

Rollout steps are real nodes of the tree (noted `rollout`, so the trace shows them and their
tokens) but not part of the search: selection and the final walk by visits pass over them, except
that a leaf's rollout is how the walk reaches a finished answer below an unexpanded leaf.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

from pydantic import Field

from .base import Strategy, StrategyParams, StrategyResult
from .context import StrategyContext
from .search import Node, SearchParams, SearchTree

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


def _visits(node: Node) -> int:
    visits: int = node.notes.get("visits", 0)
    return visits


def _mean(node: Node) -> float | None:
    """Q: the mean backed-up value; a rollout node, never backed up, has its verifier score."""
    visits = _visits(node)
    return node.notes["value"] / visits if visits else node.score


def _searched(node: Node) -> list[Node]:
    """The children the search itself made (not rollout steps)."""
    return [c for c in node.children if not c.notes.get("rollout")]


class MCTS(Strategy):
    name: ClassVar[str] = "mcts"
    description: ClassVar[str] = (
        "Step-level Monte Carlo tree search: PUCT selection; PRM or rollout values."
    )
    Params: ClassVar[type[StrategyParams]] = MCTSParams
    params: MCTSParams

    def planned_tokens(self, max_tokens: int, choices: int) -> int:
        # Every simulation expands at most one node into k children of at most one step each
        # (s = min(step_tokens, max_tokens)). A rollout extends a child to at most max_steps steps
        # in all, and no path outgrows max_tokens, so child plus rollout is at most
        # min(max_steps * s, max_tokens). Worst case: simulations * k * that per-child bound.
        p = self.params
        step = min(p.step_tokens, max_tokens)
        per_child = min(p.max_steps * step, max_tokens) if p.value == "rollout" else step
        return p.simulations * p.expansions * per_child

    async def run(self, ctx: StrategyContext) -> StrategyResult:
        p = self.params
        tree = SearchTree(ctx, p)
        tree.root.notes.update(visits=0, value=0.0)
        expanded: set[int] = set()
        selected: list[int] = []
        simulations = 0
        while simulations < p.simulations and not ctx.budget.past_deadline():
            if not any(self._open(n, expanded) for n in tree.nodes):
                break  # every leaf is finished: more simulations would only recount them
            if not ctx.budget.fit_verifier_calls(1):
                break  # new nodes could not be valued: expanding them would waste tokens
            leaf = self._select(tree.root, expanded)
            selected.append(leaf.id)
            if leaf.terminal:
                # A finished solution cannot be expanded; its value is counted again, which is
                # how MCTS grows its confidence in a good answer.
                if leaf.score is None:
                    break
                self._backup(leaf, leaf.score)
                simulations += 1
                continue
            (children,) = await tree.expand([leaf], p.expansions)
            expanded.add(leaf.id)
            if not children:
                break  # the budget ran out: return the best so far
            for child in children:
                child.notes.update(visits=0, value=0.0)
            values = await self._values(tree, children)
            for child, value in zip(children, values, strict=True):
                if value is not None:
                    self._backup(child, value)
            simulations += 1
            if any(v is None for v in values):
                break  # the verifier budget or the deadline ran out: nothing more can be valued
        candidates = self._ranked(tree)
        details: dict[str, Any] = {"verifier": tree.verifier.name, "simulations": simulations}
        if p.return_trace:
            details["selected"] = selected
            details["tree"] = tree.trace()
        return StrategyResult(
            [n.candidate() for n in candidates], list(range(len(candidates))), details
        )

    @staticmethod
    def _open(node: Node, expanded: set[int]) -> bool:
        return not node.terminal and node.id not in expanded and not node.notes.get("rollout")

    def _select(self, root: Node, expanded: set[int]) -> Node:
        """Descend by PUCT while the node is expanded and unfinished; ties go to the lower id."""
        node = root
        while node.id in expanded and not node.terminal:
            children = _searched(node)
            if not children:
                break
            # Prior 1/k (see the module docstring); Q is 0 for a child no value reached yet.
            exploration = self.params.c_puct * math.sqrt(_visits(node)) / len(children)
            scores = [
                (c.notes["value"] / _visits(c) if _visits(c) else 0.0)
                + exploration / (1 + _visits(c))
                for c in children
            ]
            best = max(scores)
            node = children[scores.index(best)]  # the first best: children are in id order
        return node

    @staticmethod
    def _backup(node: Node, value: float) -> None:
        for ancestor in node.path():
            ancestor.notes["visits"] += 1
            ancestor.notes["value"] += value

    async def _values(self, tree: SearchTree, children: Sequence[Node]) -> list[float | None]:
        """The children's values, from one verifier call (after the rollouts, if any)."""
        if self.params.value == "prm":
            await tree.evaluate(children)
            return [c.score for c in children]
        # Roll every unfinished child forward greedily, one batched engine call per step for all
        # of them, each from its own token ids; a rollout the budget stops is valued as it is.
        greedy = tree.step_options.replace(temperature=0.0)
        tips = {c.id: c for c in children}
        rolling = [c for c in children if not c.terminal]
        while rolling:
            steps = await tree.expand([tips[c.id] for c in rolling], 1, options=greedy)
            still: list[Node] = []
            for child, step in zip(rolling, steps, strict=True):
                if step:
                    step[0].notes["rollout"] = True
                    tips[child.id] = step[0]
                    if not step[0].terminal:
                        still.append(child)
            rolling = still
        await tree.evaluate(list(tips.values()))
        return [tips[c.id].score for c in children]

    def _ranked(self, tree: SearchTree) -> list[Node]:
        """Finished solutions (or, if none, the leaves) best first, by `final`."""
        nodes = tree.nodes[1:]
        pool = [n for n in nodes if n.terminal] or [n for n in nodes if not n.children]
        if self.params.final == "value":
            # Unvalued solutions (the budget left them unscored) rank last; ties: lower id.
            def by_value(n: Node) -> tuple[bool, float, int]:
                mean = _mean(n)
                return mean is None, -(mean or 0.0), n.id

            return sorted(pool, key=by_value)
        # Depth-first from the root, most visited child first (then higher Q, lower id): the first
        # solution met is the end of the most visited path; where that path ends at an unfinished
        # leaf, its rollout (visited after the searched children) or the next branch follows.
        wanted = {n.id for n in pool}
        order: list[Node] = []
        stack = [tree.root]
        while stack:
            node = stack.pop()
            if node.id in wanted:
                order.append(node)
            children = sorted(node.children, key=lambda c: (-_visits(c), -(_mean(c) or 0.0), c.id))
            stack.extend(reversed(children))
        return order
