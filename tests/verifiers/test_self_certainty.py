"""The `self_certainty` verifier: Kang et al.'s measure over the top log-probs, as a score."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pytest

from ponder.core.confidence import self_certainty
from ponder.core.engine import GeneratedSequence, SamplingOptions, TokenLogprob
from ponder.strategies.best_of_n import BestOfN, BestOfNParams
from ponder.verifiers.base import Candidate, Question, VerifierError
from ponder.verifiers.loading import load_configured_verifiers
from ponder.verifiers.self_certainty import (
    SELF_CERTAINTY_TOP_LOGPROBS,
    SelfCertaintyVerifier,
    certainty_score,
)
from tests.scripted import ScriptedEngine
from tests.strategies.helpers import make_context

QUESTION = Question(({"role": "user", "content": "What is 2 + 3?"},))
VOCAB = 1000


def token(probabilities: list[float]) -> TokenLogprob:
    """A position whose sampled token is the first of `probabilities` (the top alternatives)."""
    top = tuple((i + 1, f"t{i}", math.log(p)) for i, p in enumerate(probabilities))
    return TokenLogprob(token_id=1, token="t0", logprob=top[0][2], top=top)


# The sampled token is less likely in FLAT_TAIL's distribution than in LONG_TAIL's, but
# FLAT_TAIL's alternatives hold all the mass: its distribution is the sharper one.
FLAT_TAIL = [0.6, 0.39, 0.01]
LONG_TAIL = [0.7, 0.1, 0.1]


@dataclass
class CertaintyEngine(ScriptedEngine):
    """Samples whose every token has the distribution `shapes` gives for its text."""

    shapes: dict[str, list[float]] = field(default_factory=dict)

    def _sequence(self, text: str, options: SamplingOptions) -> GeneratedSequence:
        sequence = super()._sequence(text, options)
        if sequence.logprobs is None:
            return sequence
        shaped = tuple(token(self.shapes[text][: options.logprobs]) for _ in sequence.token_ids)
        return GeneratedSequence(
            sequence.text, sequence.token_ids, sequence.finish_reason, logprobs=shaped
        )


async def test_scores_the_sharper_distribution_higher_than_the_likelier_token() -> None:
    verifier = SelfCertaintyVerifier(ScriptedEngine(vocab_size=VOCAB))
    flat, long = (4 * (token(p),) for p in (FLAT_TAIL, LONG_TAIL))
    scores = await verifier.score(
        QUESTION, [Candidate("5", logprobs=flat), Candidate("6", logprobs=long)], request_id="r"
    )
    expected = [certainty_score(self_certainty(t, VOCAB) or 0.0) for t in (flat, long)]
    assert scores.values == pytest.approx(expected)
    assert scores.values[0] > scores.values[1] and scores.tokens == 0
    # The sampled token's own probability orders them the other way round.
    assert flat[0].logprob < long[0].logprob


def test_certainty_score_keeps_the_order_within_zero_and_one() -> None:
    values = [certainty_score(c) for c in (0.0, 0.5, 2.0, 10.0)]
    assert values == sorted(values) and values[0] == 0.0 and values[-1] < 1.0


async def test_needs_logprobs_and_an_empty_answer_shows_no_certainty() -> None:
    verifier = SelfCertaintyVerifier(ScriptedEngine(vocab_size=VOCAB))
    with pytest.raises(VerifierError):
        await verifier.score(QUESTION, [Candidate("5")], request_id="r")
    empty = await verifier.score(QUESTION, [Candidate("", logprobs=())], request_id="r")
    assert empty.values == (0.0,)


async def test_best_of_n_asks_for_the_top_alternatives_and_picks_the_surest() -> None:
    engine = CertaintyEngine(
        texts=["6", "5"], vocab_size=VOCAB, shapes={"6": LONG_TAIL, "5": FLAT_TAIL}
    )
    params = BestOfNParams(strategy="best_of_n", n=2, verifier="self_certainty")
    result = await BestOfN(params).run(make_context(engine))
    assert engine.calls[0].options.logprobs == SELF_CERTAINTY_TOP_LOGPROBS
    assert result.candidates[result.ranking[0]].answer == "5"
    assert result.ranking == [1, 0]


def test_registered_loaded_by_default_and_declares_its_logprobs() -> None:
    verifier = load_configured_verifiers(ScriptedEngine(vocab_size=VOCAB))["self_certainty"]
    assert isinstance(verifier, SelfCertaintyVerifier)
    assert verifier.vocab_size == VOCAB and verifier.kind == "programmatic"
    assert verifier.needs_logprobs and verifier.top_logprobs == SELF_CERTAINTY_TOP_LOGPROBS
