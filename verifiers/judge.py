"""A chat model as a yes/no judge: one greedy token per question, all questions in one batch.

The answer is read from the next-token log-probs as P(Yes) / (P(Yes) + P(No)), so the judge gives
a graded score rather than a coin flip, and costs one prefill per question.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from ponder.core.engine import Engine, SamplingOptions, TokenLogprob
from ponder.core.prompting import Prompt, render_prompts

__all__ = ["JUDGE_TOP_LOGPROBS", "YesNoJudge", "yes_probability"]

# Alternatives read at the verdict's position: enough that "Yes" and "No" are nearly always shown.
JUDGE_TOP_LOGPROBS = 20


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


class YesNoJudge:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def ask(self, questions: Sequence[Prompt], *, request_id: str) -> tuple[list[float], int]:
        """P(Yes) for each question, and the tokens the judge processed.

        A question is asked alone, without the conversation the answer came from: the judge
        rates the answer, and a system prompt's instructions are for the answer's author.
        """
        if not questions:
            return [], 0
        # One token is generated: that is all the room the verdict needs.
        prompts = await render_prompts(self.engine, questions, 1)
        options = SamplingOptions(max_tokens=1, temperature=0.0, logprobs=JUDGE_TOP_LOGPROBS)
        generations = await self.engine.generate(prompts, options, n=1, request_id=request_id)
        probabilities = []
        tokens = 0
        for generation in generations:
            sequence = generation.sequences[0]
            tokens += generation.prompt_tokens + sequence.num_tokens
            if sequence.logprobs:
                probabilities.append(yes_probability(_alternatives(sequence.logprobs[0])))
            else:
                probabilities.append(0.5)
        return probabilities, tokens
