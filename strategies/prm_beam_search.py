"""`prm_beam_search`: step-level beam search guided by a process verifier (Snell et al. 2024).

Sampling whole solutions wastes most of its tokens on paths that went wrong early; scoring every
partial solution with a PRM and extending only the promising ones spends them where they help.
As in search-and-learn: each level, every live partial solution is scored, the best n/M are kept
and each is extended M ways, so the frontier stays at n. Optional lookahead scores a child by a
few greedy steps past it (a steadier signal than one step) but keeps the child itself. DVTS
(diverse verifier tree search) runs n/M independent searches of width M instead, which keeps the
candidates diverse when one early path would otherwise crowd out the rest.

Everything is done through the search core: a level is one engine call (`SearchTree.expand`) and
one verifier call, valued by the core's `VerifierScore`, or its `RolloutScore` for lookahead,
which adds one greedy engine call per lookahead step; `confidence_weight` mixes the steps' own
confidence in (`ConfidenceMix`), and the `confidence` verifier ranks by it alone, with no call.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from ponder.core.answers import tally
from ponder.core.errors import StrategyInputError

from .base import Strategy, StrategyParams, StrategyResult
from .context import StrategyContext
from .progress import best_score
from .search import Node, SearchParams, SearchTree, best_first
from .values import RolloutScore, SearchValue, VerifierScore, guided

__all__ = ["PrmBeamSearch", "PrmBeamSearchParams"]


class PrmBeamSearchParams(SearchParams):
    n: int = Field(8, ge=1, le=256, description="Partial solutions kept per level, in all.")
    beam_width: int = Field(
        4, ge=1, le=256, description="Children per kept partial solution (M); must divide n."
    )
    lookahead: int = Field(
        0, ge=0, le=8, description="Greedy steps rolled past each child before it is scored."
    )
    final: Literal["score", "weighted_vote"] = Field(
        "score", description="Pick the best-scored solution, or sum scores per final answer."
    )
    dvts: bool = Field(
        False, description="n/M independent subtrees of width M (diverse verifier tree search)."
    )

    @model_validator(mode="after")
    def _beams_divide_n(self) -> PrmBeamSearchParams:
        if self.n % self.beam_width:
            # A ValueError that names its field: the server's 400 then points at tts.beam_width.
            raise StrategyInputError(
                f"n ({self.n}) must be a multiple of beam_width ({self.beam_width}): each level "
                "keeps n / beam_width partial solutions and extends each beam_width ways",
                "beam_width",
            )
        return self

    def candidates(self) -> int:
        return self.n


@dataclasses.dataclass
class _Subtree:
    """One independent beam: the whole search, or one of DVTS's n/M subtrees."""

    keep: int
    new: list[Node]
    # DVTS: the subtree's number, noted on its nodes for the trace.
    number: int | None = None


class PrmBeamSearch(Strategy):
    name: ClassVar[str] = "prm_beam_search"
    description: ClassVar[str] = (
        "Step-level beam search scored by a process verifier; optional lookahead and DVTS."
    )
    Params: ClassVar[type[StrategyParams]] = PrmBeamSearchParams
    params: PrmBeamSearchParams

    def planned_tokens(self, max_tokens: int, choices: int) -> int:
        """Worst case: every level makes n children of at most one step each, and lookahead
        rolls each child at most `lookahead` more steps (never past max_tokens):

            n * levels * (step + min(lookahead * step, max_tokens)),
            step = min(step_tokens, max_tokens),  levels = min(max_steps, max_tokens).

        n * max_tokens would not be sound: pruned siblings cost tokens too. A live path gains at
        least one token per level (its delimiter), hence levels <= max_tokens.
        """
        p = self.params
        bounds = p.bounds(max_tokens)
        per_child = bounds.step + bounds.steps(p.lookahead)
        return max(p.n * bounds.levels * per_child, choices * max_tokens)

    async def run(self, ctx: StrategyContext) -> StrategyResult:
        p = self.params
        tree = SearchTree(ctx, p)
        (first,) = await tree.expand([tree.root], p.n)
        levels = 1 if first else 0
        if p.dvts:
            subtrees = [
                _Subtree(1, first[i : i + p.beam_width], number=i // p.beam_width)
                for i in range(0, len(first), p.beam_width)
            ]
        else:
            subtrees = [_Subtree(p.n // p.beam_width, first)]
        finished: list[Node] = []
        frontier: list[Node] = []
        while any(t.new for t in subtrees):
            for subtree in subtrees:
                for node in subtree.new:
                    if subtree.number is not None:
                        node.notes["subtree"] = subtree.number
            await self._score(tree, [n for t in subtrees for n in t.new])
            finished.extend(n for t in subtrees for n in t.new if n.terminal)
            ranked = [best_first([n for n in t.new if not n.terminal]) for t in subtrees]
            frontier = best_first([n for r in ranked for n in r])
            ctx.report_progress(
                self.name,
                "level",
                levels,
                p.max_steps,
                len(frontier) + len(finished),
                best_score(n.score for n in [*frontier, *finished]),
            )
            # A spent budget shrinks or empties the next expansion: stop with the best so far.
            if not frontier or ctx.budget.exhausted is not None:
                break
            kept_per_subtree = []
            for subtree, nodes in zip(subtrees, ranked, strict=True):
                for i, node in enumerate(nodes):
                    node.notes["kept"] = i < subtree.keep
                kept_per_subtree.append(nodes[: subtree.keep])
            parents = [n for kept in kept_per_subtree for n in kept]
            children = iter(await tree.expand(parents, p.beam_width))
            for subtree, kept in zip(subtrees, kept_per_subtree, strict=True):
                subtree.new = [c for _ in kept for c in next(children)]
            # If nothing more could be generated, the kept nodes are the best unfinished ones.
            frontier = best_first(parents)
            if any(t.new for t in subtrees):
                levels += 1
        return await self._result(ctx, tree, finished, frontier, levels)

    async def _score(self, tree: SearchTree, nodes: list[Node]) -> None:
        """Score a level's new nodes in one verifier call, each through its lookahead rollout:
        the child is kept, with its rollout's score."""
        lookahead = self.params.lookahead
        value: SearchValue = RolloutScore(lookahead) if lookahead else VerifierScore()
        for node, score in zip(nodes, await guided(value, tree)(tree, nodes), strict=True):
            node.score = score

    async def _result(
        self,
        ctx: StrategyContext,
        tree: SearchTree,
        finished: list[Node],
        frontier: list[Node],
        levels: int,
    ) -> StrategyResult:
        p = self.params
        chosen = list(finished)
        # Unfinished solutions only when the finished ones cannot fill the response (budget).
        missing = max(ctx.choices, 1) - len(chosen)
        if missing > 0:
            chosen.extend(frontier[:missing])
        candidates = [n.candidate() for n in chosen]
        position = {n.id: i for i, n in enumerate(chosen)}
        ranking = [position[n.id] for n in best_first(chosen)]
        details: dict[str, Any] = {
            "verifier": tree.verifier.name,
            **tree.guidance(),
            "levels": levels,
            "finished": len(finished),
        }
        if p.final == "weighted_vote" and candidates:
            votes = await asyncio.to_thread(
                tally, [c.answer for c in candidates], [c.score or 0.0 for c in candidates]
            )
            ranking = votes.rank(ranking)
            details["answer_weights"] = votes.summary()
        if p.return_trace:
            details["tree"] = tree.trace(_lookahead_labels)
        return StrategyResult(candidates=candidates, ranking=ranking, details=details)


def _lookahead_labels(node: Node) -> dict[str, int]:
    """Which child a lookahead step rolls out, and which rollout step scored a child."""
    labels = {}
    if node.rollout_of is not None:
        labels["lookahead_of"] = node.rollout_of.id
    if node.rollout_tip is not None:
        labels["scored_as"] = node.rollout_tip.id
    return labels
