"""`genselect`: the policy shown all candidates at once and asked which one is best.

Point-wise judges (`self_judge`, `step_judge`) rate each answer alone, so they cannot compare:
two answers that disagree may both look fine on their own. Generative selection (GenSelect,
2025) puts every candidate in one prompt and asks the model to reason about them together and
name the best. It selects rather than scores, so it fits the verifier protocol as a vote: each of
`picks` selection calls names one candidate, and a candidate's score is its share of the valid
picks (one pick gives a one-hot score). Each pick sees the candidates in a different rotation, so
the model's preference for a position does not always favour the same answer, and all picks go
to the engine in one batch. A reply that names no candidate abstains; when every pick abstains,
all candidates score the same neutral 0.5 and the caller's order stands.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import ClassVar

from ponder.core.engine import Engine, SamplingOptions
from ponder.core.prompting import Numbered, Prompt, render_prompts

from .base import (
    DEFAULT_SCORING,
    Candidate,
    Question,
    Scores,
    ScoringOptions,
    VerifierError,
    VerifierKind,
)

__all__ = ["GENSELECT_PROMPT", "GenSelectVerifier", "parse_pick", "rotations"]

logger = logging.getLogger(__name__)

GENSELECT_PROMPT = (
    "Question:\n{question}\n\nHere are {count} candidate solutions to this question:\n\n"
    "{solutions}\n\nCompare the solutions, check their reasoning and final answers, and decide "
    "which one is correct. End your reply with a line of the form "
    '"Best solution: K", where K is the number of the best solution.'
)
# Score of every candidate when no pick named one: no evidence either way.
NEUTRAL = 0.5

# What names the pick, most explicit first; the last occurrence of the first kind found wins
# (the model may discuss several solutions before it decides).
_PICK_PATTERNS = (
    re.compile(r"best\s+solution\s*(?:is|:|=)?\s*(?:solution\s*)?[#*\s]*(\d+)", re.IGNORECASE),
    re.compile(r"\\boxed\{\s*(?:solution\s*)?(\d+)\s*\}", re.IGNORECASE),
    re.compile(r"(?:choose|pick|select)\s+(?:solution\s*)?#?\s*(\d+)", re.IGNORECASE),
    re.compile(r"^\s*(?:solution\s*)?#?(\d+)\s*\.?\s*$", re.IGNORECASE),
)


def parse_pick(reply: str, count: int) -> int | None:
    """The 0-based candidate a selection reply names, or None when it names none of `count`."""
    for pattern in _PICK_PATTERNS:
        found = pattern.findall(reply)
        if found:
            number = int(found[-1][:6])
            return number - 1 if 1 <= number <= count else None
    return None


def rotations(count: int, picks: int) -> list[list[int]]:
    """For each pick, the order candidates are shown in: rotations spread over the positions."""
    return [[(i * count // picks + j) % count for j in range(count)] for i in range(picks)]


class GenSelectVerifier:
    kind: ClassVar[VerifierKind] = "generative"
    family: ClassVar[str] = "genselect"
    description: ClassVar[str] = (
        "GenSelect: the policy model shown all candidates at once picks the best; score = share "
        "of the picks"
    )
    needs_logprobs: ClassVar[bool] = False
    top_logprobs: ClassVar[int] = 0

    def __init__(
        self,
        engine: Engine,
        name: str = "genselect",
        picks: int = 1,
        max_tokens: int = 256,
        temperature: float = 0.0,
    ) -> None:
        if picks < 1 or max_tokens < 1 or temperature < 0:
            raise VerifierError("genselect needs picks >= 1, max_tokens >= 1 and temperature >= 0")
        self.name = name
        self.engine = engine
        self.picks = picks
        self.max_tokens = max_tokens
        self.temperature = temperature

    @property
    def model(self) -> str | None:
        return self.engine.model_name

    async def score(
        self,
        question: Question,
        candidates: Sequence[Candidate],
        *,
        request_id: str,
        options: ScoringOptions = DEFAULT_SCORING,
    ) -> Scores:
        count = len(candidates)
        if count <= 1:
            # Nothing to choose between: a lone candidate is the pick.
            return Scores((1.0,) * count, tokens=0)
        orders = rotations(count, min(self.picks, count))
        prompts = [
            Prompt(
                GENSELECT_PROMPT,
                {"question": question.text, "count": str(count)},
                {"solutions": Numbered("Solution", tuple(candidates[i].text for i in order))},
            )
            for order in orders
        ]
        ids = await render_prompts(self.engine, prompts, self.max_tokens)
        room = min(self.max_tokens, self.engine.max_model_len - max(len(p) for p in ids))
        if room < 1:
            logger.warning("genselect: %d candidates leave no room to answer", count)
            return Scores((NEUTRAL,) * count, tokens=0)
        sampling = SamplingOptions(max_tokens=room, temperature=self.temperature)
        generations = await self.engine.generate(ids, sampling, n=1, request_id=request_id)
        votes = [0] * count
        tokens = 0
        for order, generation in zip(orders, generations, strict=True):
            reply = generation.sequences[0]
            tokens += generation.prompt_tokens + reply.num_tokens
            shown = parse_pick(reply.text, count)
            if shown is not None:
                votes[order[shown]] += 1
        valid = sum(votes)
        if valid == 0:
            logger.info("genselect: no pick named a candidate; scoring all %d neutral", count)
            return Scores((NEUTRAL,) * count, tokens=tokens)
        return Scores(tuple(v / valid for v in votes), tokens=tokens)
