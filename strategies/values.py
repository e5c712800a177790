"""Values a step-level search gives its new nodes: the evaluation half of the search core.

After llm-reasoners, a search is state (`Node`), proposal (`SearchTree.expand`) and evaluation,
and an algorithm is only which nodes it expands and keeps; so the values are offered here, not
written inside each algorithm. Each values a batch of new nodes with one verifier call or one
engine call and returns a value per node in [0, 1], None where the budget left it unvalued:

- `VerifierScore`: the verifier's score of the partial solution itself (a PRM, the step judge).
- `RolloutScore`: the verifier's score of where the node leads, a greedy rollout some steps on
  (PRM beam search's lookahead) or to a final answer (MCTS rollouts; outcome verifiers work too).
- `ModelVote`: the share of the policy model's votes for the node as the most promising of the
  batch (Tree of Thoughts' vote evaluator).
- `ConfidenceMix`: any of these mixed with the node's confidence, read from the log-probs of the
  call that generated it (`SearchTree.confidence`), free. With the `confidence` verifier the
  confidence is the verifier's score itself, so `VerifierScore` and `RolloutScore` read it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from ponder.core.prompting import Numbered, Prompt

from .search import Node, SearchTree

__all__ = [
    "VOTE_PROMPT",
    "VOTE_TOKENS",
    "ConfidenceMix",
    "ModelVote",
    "RolloutScore",
    "SearchValue",
    "VerifierScore",
    "confidence_prior",
    "guided",
    "parse_vote",
]

VOTE_PROMPT = (
    "Question:\n{question}\n\nHere are {count} candidate partial solutions:\n\n{choices}\n\n"
    "Which choice is the most promising way towards a correct answer? Conclude with "
    '"The best choice is N", where N is the number of that choice.'
)
# A vote is a short verdict, not a solution: enough for a sentence of reasons and the number.
VOTE_TOKENS = 64
_BEST_CHOICE = re.compile(r"best choice is\D{0,12}?(\d+)", re.IGNORECASE)
_INTEGER = re.compile(r"\d+")


class SearchValue(Protocol):
    async def __call__(self, tree: SearchTree, nodes: Sequence[Node]) -> list[float | None]:
        """A value per node, from one batched call; None where the budget left it unvalued."""
        ...


class VerifierScore:
    """The verifier's score of each node, in one call through the step-score cache."""

    async def __call__(self, tree: SearchTree, nodes: Sequence[Node]) -> list[float | None]:
        await tree.evaluate(nodes)
        return [n.score for n in nodes]


@dataclass(frozen=True)
class RolloutScore:
    """The verifier's score of each node's greedy rollout, `steps` steps on (None: to a final
    answer), all rollouts scored in one call. The node keeps its own score; the rollout's step
    scores cover steps the node does not have, so they stay on the rollout's nodes."""

    steps: int | None = None

    async def __call__(self, tree: SearchTree, nodes: Sequence[Node]) -> list[float | None]:
        tips = await tree.rollout(nodes, self.steps)
        await tree.evaluate(tips)
        return [tip.score for tip in tips]


def parse_vote(text: str, choices: int) -> int | None:
    """The 0-based choice a vote names ("The best choice is N", else its first integer), or None
    when it names none or a number outside 1..choices."""
    found = _BEST_CHOICE.findall(text)
    number = found[-1] if found else next(iter(_INTEGER.findall(text)), None)
    # Longer digit strings name no choice (and Python refuses to convert thousands of digits).
    if number is None or len(number) > 3:
        return None
    index = int(number) - 1
    return index if 0 <= index < choices else None


@dataclass
class ModelVote:
    """Each node's share of `votes` replies of the policy model asked which of the numbered
    nodes is most promising (one engine call with n=votes); counts what the votes cost."""

    votes: int
    tokens: int = 0
    invalid: int = 0

    async def __call__(self, tree: SearchTree, nodes: Sequence[Node]) -> list[float | None]:
        if len(nodes) <= 1:
            # A lone thought would get every valid vote; asking costs a call and says nothing.
            for node in nodes:
                node.notes["unopposed"] = True
            return [1.0] * len(nodes)
        ctx = tree.ctx
        choices = Numbered("Choice", tuple(n.text.strip() for n in nodes))
        fields = {"question": ctx.question.text, "count": str(len(nodes))}
        prompt = Prompt(VOTE_PROMPT, fields, {"choices": choices})
        # Votes are the model's verdicts, not answers: the request's stop strings, log-probs
        # and length rules are for its answers.
        options = ctx.options.replace(
            max_tokens=VOTE_TOKENS,
            stop=(),
            include_stop=False,
            logprobs=None,
            min_tokens=0,
            ignore_eos=False,
        )
        generations = await ctx.sample_replies([prompt], self.votes, options) or []
        replies = [s for g in generations for s in g.sequences]
        self.tokens += sum(s.num_tokens for s in replies)
        counts = [0] * len(nodes)
        for reply in replies:
            choice = parse_vote(reply.text, len(nodes))
            if choice is None:
                self.invalid += 1
            else:
                counts[choice] += 1
        valid = sum(counts)
        for node, count in zip(nodes, counts, strict=True):
            node.notes["votes"] = count
        # No valid vote (or none sampled: budget) leaves the thoughts unvalued, not tied.
        return [count / valid if valid else None for count in counts]


@dataclass(frozen=True)
class ConfidenceMix:
    """`(1 - weight) * value + weight * confidence` per node: the verifier's judgment tempered
    by how sure the model was of the step. A node the value left unvalued (budget) stays so."""

    value: SearchValue
    weight: float

    async def __call__(self, tree: SearchTree, nodes: Sequence[Node]) -> list[float | None]:
        values = await self.value(tree, nodes)
        mixed: list[float | None] = []
        for node, value in zip(nodes, values, strict=True):
            confidence = tree.confidence(node)
            node.notes["confidence"] = confidence
            if value is None or confidence is None:
                mixed.append(value)
            else:
                mixed.append((1 - self.weight) * value + self.weight * confidence)
        return mixed


def guided(value: SearchValue, tree: SearchTree) -> SearchValue:
    """`value`, mixed with the nodes' confidence when the request weighs it in."""
    return ConfidenceMix(value, tree.params.confidence_weight) if tree.mixes_confidence else value


def confidence_prior(tree: SearchTree, children: Sequence[Node]) -> list[float]:
    """MCTS's prior over siblings: `confidence_weight` of it in proportion to their confidence,
    the rest uniform (uniform alone when the weight is 0 or no confidence was read)."""
    uniform = 1 / len(children)
    weight = tree.params.confidence_weight
    confidences = [tree.confidence(c) or 0.0 for c in children] if weight else []
    total = sum(confidences)
    if total <= 0:
        return [uniform] * len(children)
    return [(1 - weight) * uniform + weight * c / total for c in confidences]
