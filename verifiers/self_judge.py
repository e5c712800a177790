"""`self_judge`: the policy model asked whether each candidate answer is correct.

The score is P("Yes") / (P("Yes") + P("No")) read from the next-token log-probs of one greedy
token, so it costs one prefill per candidate and all candidates go to the engine in one batch.
Works with any chat model, the embedded default included.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import ClassVar

from ponder.server.engine import Engine, SamplingOptions, TokenLogprob

from .base import DEFAULT_SCORING, Candidate, Question, Scores, ScoringOptions, VerifierKind

__all__ = ["SelfJudgeVerifier", "yes_probability"]

JUDGE_PROMPT = (
    "Question:\n{question}\n\nProposed answer:\n{answer}\n\n"
    "Is the proposed answer correct? Reply with Yes or No."
)
_TOP_LOGPROBS = 20


def yes_probability(alternatives: Iterable[tuple[str, float]]) -> float:
    """P(yes) / (P(yes) + P(no)) from (token text, logprob) pairs of one position.

    Spellings are summed (" Yes", "yes", ...). A word missing from the top alternatives is given
    the probability of the least likely one shown, an upper bound, so absence never reads as
    certainty; with neither word present the judge abstains at 0.5.
    """
    yes = no = 0.0
    floor = 1.0
    for token, logprob in alternatives:
        p = math.exp(logprob)
        floor = min(floor, p)
        word = token.strip().lower()
        if word == "yes":
            yes += p
        elif word == "no":
            no += p
    if yes == 0.0 and no == 0.0:
        return 0.5
    yes = yes or floor
    no = no or floor
    return yes / (yes + no)


def _alternatives(position: TokenLogprob) -> list[tuple[str, float]]:
    seen = {token_id for token_id, _, _ in position.top}
    pairs = [(text, logprob) for _, text, logprob in position.top]
    if position.token_id not in seen:
        pairs.append((position.token, position.logprob))
    return pairs


class SelfJudgeVerifier:
    kind: ClassVar[VerifierKind] = "generative"
    family: ClassVar[str] = "yes_no_judge"
    description: ClassVar[str] = 'the policy model asked "is this answer correct?"; P(Yes) vs P(No)'
    needs_logprobs: ClassVar[bool] = False

    def __init__(self, engine: Engine, name: str = "self_judge", **_: object) -> None:
        self.name = name
        self._engine = engine

    @property
    def model(self) -> str | None:
        return self._engine.model_name

    def _prompt(self, question: str, answer: str) -> list[int]:
        ids = self._engine.render_chat(
            [{"role": "user", "content": JUDGE_PROMPT.format(question=question, answer=answer)}]
        )
        overflow = len(ids) - (self._engine.max_model_len - 1)
        if overflow <= 0:
            return ids
        # Keep the end of the answer, where its conclusion is.
        answer_ids = self._engine.encode(answer)
        kept = self._engine.decode(answer_ids[overflow + 8 :])
        return self._engine.render_chat(
            [{"role": "user", "content": JUDGE_PROMPT.format(question=question, answer=kept)}]
        )

    async def score(
        self,
        question: Question,
        candidates: Sequence[Candidate],
        *,
        request_id: str,
        options: ScoringOptions = DEFAULT_SCORING,
    ) -> Scores:
        if not candidates:
            return Scores(())
        prompts = [self._prompt(question.text, c.text) for c in candidates]
        options = SamplingOptions(max_tokens=1, temperature=0.0, logprobs=_TOP_LOGPROBS)
        generations = await self._engine.generate(prompts, options, n=1, request_id=request_id)
        values = []
        tokens = 0
        for generation in generations:
            sequence = generation.sequences[0]
            tokens += generation.prompt_tokens + sequence.num_tokens
            if sequence.logprobs:
                values.append(yes_probability(_alternatives(sequence.logprobs[0])))
            else:
                values.append(0.5)
        return Scores(tuple(values), tokens=tokens)
