"""The search core that step-level strategies share: nodes, batched expansion, batched scoring.

After llm-reasoners, a search is three separable things: state transitions (a node extends its
parent by one step), proposal (`expand`: every child of a level in one engine call that continues
from token ids, so vLLM's prefix cache serves the shared prefix; `rollout`: greedy steps past a
node, to see where it leads) and evaluation (`evaluate`: every node of a level in one verifier
call, through the step-score cache; the values built on it are in values.py). PRM beam search,
MCTS and Tree of Thoughts differ only in which nodes they expand, how they value them and which
they keep.

A search may also be guided by the model's own confidence in each step, read from the log-probs
of the engine call that generated it (`SearchParams.confidence`): with the `confidence` verifier
it is the node's value and no verifier is called; with another verifier `confidence_weight` mixes
it in (values.py) or makes it MCTS's prior.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar

from pydantic import Field, model_validator

from ponder.core.answers import extract_answer
from ponder.core.confidence import bounded_confidence, lowest_group_confidence, mean_probability
from ponder.core.engine import FinishReason, GeneratedSequence, SamplingOptions, TokenLogprob
from ponder.core.errors import StrategyInputError
from ponder.verifiers.base import Candidate, StepScore, Verifier

from .base import RankedCandidate, StrategyParams
from .context import StrategyContext

__all__ = [
    "CONFIDENCE_VERIFIER_FAMILY",
    "MAX_DEPTH",
    "ConfidenceMeasure",
    "Node",
    "Rankable",
    "SearchParams",
    "SearchTree",
    "StepBounds",
    "best_first",
]

# Hard ceilings on the knobs every search shares; the server's caps bound their product.
MAX_DEPTH = 64
MAX_STEP_TOKENS = 4096
# The verifier family a search reads from its steps' log-probs itself (verifiers/confidence.py).
CONFIDENCE_VERIFIER_FAMILY = "confidence"
# Alternatives per token a group confidence reads by default: with the sampled token alone,
# DeepConf's token confidence (minus the alternatives' mean log-prob) would be its surprisal.
GROUP_TOP_LOGPROBS = 5

ConfidenceMeasure = Literal["step_mean", "step_lowest_group", "path_mean"]


class Rankable(Protocol):
    """Anything `best_first` ranks: an id (for ties) and a score (None: unscored)."""

    @property
    def id(self) -> int: ...

    @property
    def score(self) -> float | None: ...


RankableT = TypeVar("RankableT", bound=Rankable)


def best_first(items: Sequence[RankableT]) -> list[RankableT]:
    """Best score first; unscored (budget) last; ties to the earlier id, so runs repeat exactly."""
    return sorted(items, key=lambda i: (i.score is None, -(i.score or 0.0), i.id))


@dataclass(frozen=True)
class StepBounds:
    """The worst-case token arithmetic every step-level search plans with (`planned_tokens`)."""

    # Tokens one step may take: min(step_tokens, max_tokens).
    step: int
    # Steps one path may have: min(max_steps, max_tokens); a step that does not end a solution
    # has at least one token (its delimiter).
    levels: int
    max_tokens: int

    def steps(self, count: int) -> int:
        """Tokens `count` more steps of one path may take: no path outgrows max_tokens."""
        return min(count * self.step, self.max_tokens)


class SearchParams(StrategyParams):
    """Knobs every step-level search has."""

    verifier: str = Field("step_judge", description="Verifier that scores partial solutions.")
    max_steps: int = Field(8, ge=1, le=MAX_DEPTH, description="Most steps in one solution.")
    step_tokens: int = Field(128, ge=1, le=MAX_STEP_TOKENS, description="Most tokens in one step.")

    confidence: ConfidenceMeasure = Field(
        "step_mean",
        description="A node's confidence, from the log-probs of the call that generated it: "
        "its step's mean token probability (step_mean), its least confident window of "
        "confidence_window tokens (step_lowest_group, DeepConf), or the whole path's mean token "
        "probability (path_mean). Its value with verifier=confidence; see confidence_weight.",
    )
    confidence_window: int = Field(
        16, ge=1, le=MAX_STEP_TOKENS, description="Tokens per window of step_lowest_group."
    )
    confidence_top_logprobs: int | None = Field(
        None,
        ge=0,
        le=20,
        description="Alternatives per token the confidence reads (default: 0 for the means, "
        f"{GROUP_TOP_LOGPROBS} for step_lowest_group, which needs at least 2).",
    )
    confidence_weight: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="prm_beam_search, tree_of_thoughts: the confidence's share of a node's "
        "value, the rest the verifier's score (with a verifier other than confidence); mcts: "
        "its share of the PUCT prior, the rest uniform.",
    )

    @model_validator(mode="after")
    def _group_needs_alternatives(self) -> SearchParams:
        if self.confidence == "step_lowest_group" and self.top_logprobs() < 2:
            raise StrategyInputError(
                "step_lowest_group reads DeepConf's token confidence, the mean log-prob of the "
                "top alternatives; it needs at least 2 of them",
                "confidence_top_logprobs",
            )
        return self

    def verifier_names(self) -> dict[str, str]:
        return {"tts.verifier": self.verifier}

    def top_logprobs(self) -> int:
        """Alternatives per token the confidence measure asks the engine for."""
        if self.confidence_top_logprobs is not None:
            return self.confidence_top_logprobs
        return GROUP_TOP_LOGPROBS if self.confidence == "step_lowest_group" else 0

    def top_logprobs_needed(self) -> dict[str, int]:
        # Asked for only when the confidence is read (see SearchTree); planning cannot tell the
        # verifier's family from its name, so the need is declared whenever it is set.
        wanted = self.top_logprobs()
        return {"tts.confidence_top_logprobs": wanted} if wanted else {}

    def bounds(self, max_tokens: int) -> StepBounds:
        """The step and path bounds of a request whose answers have `max_tokens` at most."""
        return StepBounds(
            min(self.step_tokens, max_tokens), min(self.max_steps, max_tokens), max_tokens
        )


@dataclass(eq=False)
class Node:
    """A partial solution: its parent plus one step. The root is the empty solution."""

    id: int
    parent: Node | None
    depth: int
    token_ids: tuple[int, ...] = ()
    text: str = ""
    step_text: str = ""
    step_tokens: int = 0
    # The step's token log-probs, when the search reads its confidence.
    logprobs: tuple[TokenLogprob, ...] | None = None
    terminal: bool = False
    finish_reason: FinishReason | None = None
    score: float | None = None
    step_scores: tuple[StepScore, ...] | None = None
    children: list[Node] = field(default_factory=list)
    # Greedy rollout steps (`SearchTree.rollout`) are nodes of the tree but not of the search:
    # each names the node whose rollout it continues, and that node its rollout's last step.
    rollout_of: Node | None = None
    rollout_tip: Node | None = None
    # What the algorithm decided about the node (kept, pruned, ...), for the trace only: state
    # an algorithm reads back is typed.
    notes: dict[str, Any] = field(default_factory=dict)

    def path(self) -> list[Node]:
        nodes: list[Node] = []
        node: Node | None = self
        while node is not None:
            nodes.append(node)
            node = node.parent
        return nodes[::-1]

    def sequence(self) -> GeneratedSequence:
        # A solution the search did not finish was cut short, whatever ended its last step.
        reason: FinishReason = (self.finish_reason or "length") if self.terminal else "length"
        return GeneratedSequence(self.text, self.token_ids, reason)

    def candidate(self) -> RankedCandidate:
        return RankedCandidate(
            self.sequence(),
            score=self.score,
            answer=extract_answer(self.text),
            step_scores=self.step_scores,
        )


class SearchTree:
    """The nodes of one search and the two batched operations on them."""

    def __init__(self, ctx: StrategyContext, params: SearchParams) -> None:
        self.ctx = ctx
        self.params = params
        self._ids = itertools.count()
        self.root = Node(next(self._ids), None, 0)
        self.nodes: list[Node] = [self.root]
        self.verifier: Verifier = ctx.verifier(params.verifier)
        # The confidence verifier guides a search by each step's log-probs, read here; any
        # other log-prob verifier would need whole answers' log-probs, which paths do not keep.
        self.by_confidence = self.verifier.family == CONFIDENCE_VERIFIER_FAMILY
        if self.verifier.needs_logprobs and not self.by_confidence:
            raise StrategyInputError(
                f"verifier {params.verifier!r} reads whole answers' token log-probs, which "
                "step-level searches do not keep; choose another verifier",
                "tts.verifier",
            )
        # Weighted in with another verifier's score (values.py), or MCTS's prior.
        self.mixes_confidence = not self.by_confidence and params.confidence_weight > 0
        self.reads_confidence = self.by_confidence or params.confidence_weight > 0
        logprobs = ctx.options.logprobs
        if self.reads_confidence:
            # Asked of the call that generates each step: the confidence costs no second pass.
            logprobs = max(logprobs or 0, params.top_logprobs())
        self.step_options = ctx.options.replace(
            max_tokens=min(params.step_tokens, ctx.options.max_tokens),
            stop=(params.step_delimiter, *ctx.options.stop),
            include_stop=True,
            logprobs=logprobs,
        )

    def _child(self, parent: Node, sequence: GeneratedSequence) -> Node:
        text = parent.text + sequence.text
        token_ids = parent.token_ids + sequence.token_ids
        # A step that ended at the delimiter is one step of more; anything else (EOS, another
        # stop string, the length limits) ends the solution.
        at_delimiter = sequence.stop_reason == self.params.step_delimiter
        depth = parent.depth + 1
        too_long = len(token_ids) >= self.ctx.options.max_tokens
        terminal = not at_delimiter or depth >= self.params.max_steps or too_long
        node = Node(
            next(self._ids),
            parent,
            depth,
            token_ids=token_ids,
            text=text,
            step_text=sequence.text,
            step_tokens=sequence.num_tokens,
            logprobs=sequence.logprobs if self.reads_confidence else None,
            terminal=terminal,
            finish_reason="stop" if at_delimiter else sequence.finish_reason,
        )
        parent.children.append(node)
        self.nodes.append(node)
        return node

    async def expand(
        self, parents: Sequence[Node], k: int, *, options: SamplingOptions | None = None
    ) -> list[list[Node]]:
        """`k` children for each parent, all from one engine call; fewer if the budget ends."""
        live = [p for p in parents if not p.terminal]
        if not live or k < 1:
            return [[] for _ in parents]
        room = self.ctx.options.max_tokens - max(len(p.token_ids) for p in live)
        step = options or self.step_options
        step = step.replace(max_tokens=max(1, min(step.max_tokens, room)))
        prompts = [self.ctx.prompt_token_ids + list(p.token_ids) for p in live]
        generations = await self.ctx.sample(k, prompts=prompts, options=step)
        children: dict[int, list[Node]] = {p.id: [] for p in parents}
        for parent, generation in zip(live, generations, strict=False):
            for sequence in generation.sequences:
                if sequence.num_tokens or sequence.finish_reason != "abort":
                    children[parent.id].append(self._child(parent, sequence))
        return [children[p.id] for p in parents]

    async def rollout(self, nodes: Sequence[Node], steps: int | None = None) -> list[Node]:
        """Each node continued greedily, `steps` steps at most (None: until its path ends), one
        engine call per step for every rollout still going; each node's tip, the node itself
        when it is finished or nothing could be added.

        Greedy, as search-and-learn's lookahead and rStar's rollouts are: a rollout estimates
        where a step leads, it does not explore. A rollout the budget stops (it grants no more
        tokens, or fewer) ends where it is.
        """
        greedy = self.step_options.replace(temperature=0.0)
        tips = list(nodes)
        rolling = [i for i, node in enumerate(nodes) if not node.terminal]
        taken = 0
        while rolling and (steps is None or taken < steps):
            rolled = await self.expand([tips[i] for i in rolling], 1, options=greedy)
            taken += 1
            still: list[int] = []
            for i, step in zip(rolling, rolled, strict=True):
                if step:
                    step[0].rollout_of = nodes[i]
                    nodes[i].rollout_tip = tips[i] = step[0]
                    if not step[0].terminal:
                        still.append(i)
            rolling = still
        return tips

    def guidance(self) -> dict[str, Any]:
        """How the confidence entered the search, for the response's details."""
        if not self.reads_confidence:
            return {}
        p = self.params
        return {"confidence": p.confidence, "confidence_weight": p.confidence_weight}

    def confidence(self, node: Node) -> float | None:
        """The node's confidence in [0, 1] by the request's measure; None without log-probs."""
        p = self.params
        if p.confidence == "path_mean":
            path = [t for n in node.path() for t in (n.logprobs or ())]
            return mean_probability(path)
        if not node.logprobs:
            return None
        if p.confidence == "step_mean":
            return mean_probability(node.logprobs)
        lowest = lowest_group_confidence(node.logprobs, p.confidence_window)
        return None if lowest is None else bounded_confidence(lowest)

    async def evaluate(self, nodes: Sequence[Node]) -> None:
        """Score nodes in one verifier call (the step-score cache spares known prefixes); by
        the confidence verifier, each node's confidence, with no call at all."""
        todo = [n for n in nodes if n.score is None and n is not self.root]
        if not todo:
            return
        if self.by_confidence:
            for node in todo:
                node.score = self.confidence(node)
            return
        candidates = [Candidate(text=n.text, token_ids=n.token_ids) for n in todo]
        scored = await self.ctx.score_candidates(self.verifier, candidates)
        for node, value, steps in zip(todo, scored.values, scored.steps, strict=True):
            node.score = value
            node.step_scores = steps

    def generated_tokens(self) -> int:
        return sum(n.step_tokens for n in self.nodes)

    def trace(
        self, labels: Callable[[Node], Mapping[str, Any]] = lambda node: {}
    ) -> list[dict[str, Any]]:
        """Every node, parents before children: the tree the search built, each node with its
        notes and the `labels` the algorithm gives it (its typed state, for the trace)."""
        return [
            {
                "id": n.id,
                "parent": n.parent.id if n.parent is not None else None,
                "depth": n.depth,
                "step": n.step_text,
                "tokens": n.step_tokens,
                "score": n.score,
                "terminal": n.terminal,
                **n.notes,
                **labels(n),
            }
            for n in self.nodes
        ]
