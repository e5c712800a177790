"""`tree_of_thoughts`: breadth- or depth-first search over reasoning steps (Yao et al. 2023).

A thought is one step (text up to the step delimiter). Each kept node proposes `proposals` next
thoughts in one engine call (the search core's `expand`), and every new thought is valued at once,
by one of the values the search core offers (values.py): a verifier's score (one call through the
step-score cache) or, as in the paper's "vote" evaluator, the policy model's votes for the most
promising of the numbered thoughts (one engine call with n=votes). BFS keeps the `breadth` best
thoughts per level; DFS follows the best child first, prunes children valued below `threshold` and
backtracks when a subtree runs dry. The `confidence` verifier values thoughts by the model's own
confidence in them, read from the proposal call's log-probs; `confidence_weight` mixes it in.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Literal

from pydantic import Field

from .base import Strategy, StrategyParams, StrategyResult
from .context import StrategyContext
from .progress import best_score
from .search import Node, SearchParams, SearchTree, best_first
from .values import VOTE_TOKENS, ModelVote, SearchValue, VerifierScore, guided

__all__ = ["TreeOfThoughts", "TreeOfThoughtsParams"]


class TreeOfThoughtsParams(SearchParams):
    method: Literal["bfs", "dfs"] = Field("bfs", description="Breadth- or depth-first search.")
    breadth: int = Field(3, ge=1, le=32, description="BFS: thoughts kept per level.")
    proposals: int = Field(3, ge=1, le=16, description="Thoughts proposed per expanded node.")
    value: Literal["verifier", "vote"] = Field(
        "verifier", description="Value thoughts by the verifier, or by the policy model's votes."
    )
    votes: int = Field(5, ge=1, le=32, description="Votes sampled per valuation (value=vote).")
    threshold: float = Field(
        0.5, ge=0.0, le=1.0, description="DFS: children valued below this are pruned."
    )
    max_expansions: int = Field(
        32, ge=1, le=256, description="DFS: most nodes expanded (bounds the search's cost)."
    )

    def candidates(self) -> int:
        # The widest batch of thoughts generated and valued together: a BFS level, or one DFS
        # node's children. The whole tree's cost is bounded by `planned_tokens` instead.
        return self.breadth * self.proposals if self.method == "bfs" else self.proposals


class TreeOfThoughts(Strategy):
    name: ClassVar[str] = "tree_of_thoughts"
    description: ClassVar[str] = (
        "BFS or DFS over reasoning steps; thoughts valued by a verifier or by the model's votes."
    )
    Params: ClassVar[type[StrategyParams]] = TreeOfThoughtsParams
    params: TreeOfThoughtsParams

    def needs_diverse_samples(self) -> bool:
        # Proposals are sampled together, and so are the votes of a valuation.
        p = self.params
        return super().needs_diverse_samples() or (p.value == "vote" and p.votes > 1)

    def planned_tokens(self, max_tokens: int, choices: int) -> int:
        """Worst case: every proposal runs to the step limit and every valuation votes in full.

        BFS proposes k thoughts at level 1 and at most b*k at each later level, for at most
        min(max_steps, max_tokens) levels (a step that does not end a solution has a token). DFS
        proposes k thoughts per expansion, for at most `max_expansions` expansions. Each level or
        expansion values its thoughts once: with votes, `votes` replies of `VOTE_TOKENS`.
        """
        p = self.params
        bounds = p.bounds(max_tokens)
        if p.method == "bfs":
            levels = bounds.levels
            thoughts = p.proposals + (levels - 1) * p.breadth * p.proposals
        else:
            levels = p.max_expansions
            thoughts = levels * p.proposals
        voting = levels * p.votes * VOTE_TOKENS if p.value == "vote" else 0
        return thoughts * bounds.step + voting

    async def run(self, ctx: StrategyContext) -> StrategyResult:
        p = self.params
        search = _Search(SearchTree(ctx, p), p)
        tree = search.tree
        details: dict[str, Any] = {"method": p.method, "value": p.value, **tree.guidance()}
        found = None
        if p.method == "bfs":
            details["levels"] = await search.bfs()
        else:
            found = await search.dfs(tree.root)
            details["expansions"] = search.expansions
            details["found"] = found is not None
        if isinstance(search.value_of, ModelVote):
            details["vote_tokens"] = search.value_of.tokens
            details["invalid_votes"] = search.value_of.invalid
        if p.return_trace:
            details["tree"] = tree.trace()
        nodes = [n for n in tree.nodes if n.terminal]
        if not nodes:
            # No solution was finished (budget): the best partial solutions, those not extended.
            nodes = [n for n in tree.nodes if n is not tree.root and not n.children]
        ranked = best_first(nodes)
        if found is not None:
            ranked = [found, *(n for n in ranked if n is not found)]
        index = {n.id: i for i, n in enumerate(nodes)}
        return StrategyResult(
            candidates=[n.candidate() for n in nodes],
            ranking=[index[n.id] for n in ranked],
            details=details,
        )


class _Search:
    """One run's search: the tree, how it values thoughts and the algorithm's decisions (in
    node notes)."""

    def __init__(self, tree: SearchTree, params: TreeOfThoughtsParams) -> None:
        self.tree = tree
        self.params = params
        self.value_of: SearchValue = (
            ModelVote(params.votes) if params.value == "vote" else VerifierScore()
        )
        # What thoughts are ranked by: the value, with their confidence mixed in if asked.
        self.ranking_value = guided(self.value_of, tree)
        self.expansions = 0
        self._visits = 0

    def stopped(self) -> bool:
        exhausted = self.tree.ctx.budget.exhausted is not None
        return exhausted or self.expansions >= self.params.max_expansions

    async def bfs(self) -> int:
        """Level by level; returns the number of levels searched."""
        p = self.params
        frontier = [self.tree.root]
        levels = 0
        while frontier and levels < p.max_steps:
            grown = await self.tree.expand(frontier, p.proposals)
            new = [child for children in grown for child in children]
            if not new:
                break
            levels += 1
            await self.value(new)
            # Finished solutions are set aside as candidates; only live ones compete for room.
            for node in new:
                if node.terminal:
                    node.notes["finished"] = True
            ranked = best_first([n for n in new if not n.terminal])
            for node in ranked[: p.breadth]:
                node.notes["kept"] = True
            for node in ranked[p.breadth :]:
                node.notes["pruned"] = True
            frontier = ranked[: p.breadth]
            self._report("level", levels, p.max_steps)
            if self.tree.ctx.budget.exhausted is not None:
                break
        return levels

    async def dfs(self, node: Node) -> Node | None:
        """Best child first, backtracking when a subtree runs dry; the solution found, if any."""
        p = self.params
        (children,) = await self.tree.expand([node], p.proposals)
        self.expansions += 1
        await self.value(children)
        self._report("expansion", self.expansions, p.max_expansions)
        order = best_first(children)
        node.notes["visit_order"] = [c.id for c in order]
        for child in order:
            if child.score is None or child.score < p.threshold:
                child.notes["pruned"] = True
                continue
            # A finished solution needs no more compute, so one is accepted even when the search
            # has to stop; live children are explored only while it may go on.
            if not child.terminal and self.stopped():
                continue
            child.notes["visit"] = self._visits
            self._visits += 1
            if child.terminal:
                child.notes["found"] = True
                return child
            found = await self.dfs(child)
            if found is not None:
                return found
        if not self.stopped():
            node.notes["backtracked"] = True
        return None

    def _report(self, phase: str, step: int, max_steps: int) -> None:
        """Progress: the thoughts not yet extended or pruned (finished ones included)."""
        nodes = self.tree.nodes[1:]
        alive = sum(1 for n in nodes if not n.children and "pruned" not in n.notes)
        best = best_score(n.score for n in nodes)
        self.tree.ctx.report_progress(TreeOfThoughts.name, phase, step, max_steps, alive, best)

    async def value(self, nodes: Sequence[Node]) -> None:
        """Give every new thought a value (its score), in one call."""
        values = await self.ranking_value(self.tree, nodes)
        for node, value in zip(nodes, values, strict=True):
            node.score = value
