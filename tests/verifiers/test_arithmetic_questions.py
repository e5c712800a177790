"""The `arithmetic` verifier on questions as generated arithmetic sets phrase them.

Questions are generated at test time by reasoning-gym from fixed seeds (nothing is downloaded),
so these tests read the exact phrasings an evaluation sends: "State the final answer to the
following arithmetic problem: 6 - 7 =", "Calculate ( 56 + -33 ) - 84.", "... = ?".
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal, localcontext
from fractions import Fraction
from typing import Any

import pytest
import reasoning_gym

from ponder.strategies.best_of_n import BestOfN, BestOfNParams
from ponder.verifiers.arithmetic import (
    SLIPPED_ANSWER_SCORE,
    ArithmeticVerifier,
    answers_question,
    question_value,
)
from ponder.verifiers.base import Candidate, Question
from tests.scripted import ScriptedEngine
from tests.strategies.helpers import make_context

SIZE = 40


def generated(name: str, seed: int = 11, **config: Any) -> list[dict[str, Any]]:
    return list(reasoning_gym.create_dataset(name, size=SIZE, seed=seed, **config))


@pytest.mark.parametrize("name", ["chain_sum", "decimal_chain_sum", "products"])
def test_recognises_every_generated_question_and_its_value(name: str) -> None:
    for entry in generated(name):
        assert question_value(entry["question"]) == Fraction(entry["answer"]), entry["question"]


def test_basic_arithmetic_values_are_exact() -> None:
    # reasoning-gym computes its answer with floor division; where a division leaves a
    # remainder its answer is the floor of the question's exact value, which is what we check.
    for entry in generated("basic_arithmetic"):
        value = question_value(entry["question"])
        assert value is not None, entry["question"]
        if value.denominator == 1:
            assert value == int(entry["answer"]), entry["question"]
        else:
            assert math.floor(value) == int(entry["answer"]), entry["question"]


def test_rounded_answers_to_a_question_asked_with_equals_question_mark() -> None:
    # "... Only reply with the final value.\n6.062/9.923+4.250 = ?", answered to 12 digits.
    for entry in generated("decimal_arithmetic"):
        value = question_value(entry["question"])
        assert value is not None, entry["question"]
        # reasoning-gym rounds a float, so its last digit may differ from exact rounding.
        assert float(value) == pytest.approx(float(entry["answer"]), rel=1e-9)
        places = len(entry["answer"].partition(".")[2])
        # Enough digits for the exact value (reasoning-gym sets the global context to 12).
        with localcontext(prec=60):
            rounded = Decimal(value.numerator) / Decimal(value.denominator)
            unit = Decimal(1).scaleb(-places)
            answer = rounded.quantize(unit, rounding=ROUND_HALF_UP)
            above = answer + unit
        # One unit off in the last place shown is never the value.
        assert not answers_question(str(above), value)
        if Fraction(answer) == value or not terminates(value):
            # Rounding is allowed where the value has no finite decimal form, as in claims.
            assert answers_question(str(answer), value), entry["question"]
        else:
            # A value with a finite decimal form must be given in full.
            assert not answers_question(str(answer), value)
            assert answers_question(str(rounded), value)


def test_a_statement_in_the_question_is_not_what_it_asks() -> None:
    assert question_value("If 2 + 3 = 5, what is 6 - 7 =") == -1
    assert question_value("Is 2 + 3 = 5 true?") is None
    assert question_value("Fill in: 4 * 5 = ___") == 20
    assert question_value("2 + 2 = 4 = ?") is None


def terminates(value: Fraction) -> bool:
    denominator = value.denominator
    for prime in (2, 5):
        while denominator % prime == 0:
            denominator //= prime
    return denominator == 1


async def score(question: str, *answers: str, aggregation: Any = "min") -> tuple[float, ...]:
    verifier = ArithmeticVerifier(aggregation=aggregation)
    asked = Question(({"role": "user", "content": question},))
    scores = await verifier.score(asked, [Candidate(a) for a in answers], request_id="r")
    return scores.values


async def test_the_final_answer_is_checked_against_a_generated_question() -> None:
    entry = generated("chain_sum", min_terms=3, max_terms=3, min_digits=2, max_digits=2)[0]
    question, expected = entry["question"], entry["answer"]
    terms = question.split(": ", 1)[1].rstrip(" =")
    values = await score(
        question,
        f"{terms} = {expected}",
        f"The answer is {expected}.",
        # A true claim that does not answer the question is no evidence for it.
        "7 * 9 = 63.",
        f"{terms} = {int(expected) + 1}",
        # Right after a slip: below a clean right answer, above every wrong one.
        f"10 + 10 = 21\n\nThe answer is {expected}.",
    )
    assert values == (1.0, 1.0, 0.0, 0.0, SLIPPED_ANSWER_SCORE)
    # Before a question written with a trailing "=" was recognised, the unrelated claim scored
    # 1.0; "last" asks only whether the final answer is right, and it is not.
    assert await score(question, "7 * 9 = 63.", aggregation="last") == (0.0,)


async def test_weighted_best_of_n_picks_the_answer_to_the_question() -> None:
    entry = generated("chain_sum", seed=12, min_terms=2, max_terms=2)[0]
    expected = entry["answer"]
    # The majority states true arithmetic that does not answer the question.
    texts = ["7 * 9 = 63.", "7 * 9 = 63.", f"So the answer is {expected}.", "7 * 9 = 63."]
    engine = ScriptedEngine(texts=texts)
    ctx = make_context(engine)
    ctx.question = Question(({"role": "user", "content": entry["question"]},))
    params = BestOfNParams(strategy="best_of_n", n=4, verifier="arithmetic", weighted=True)
    result = await BestOfN(params).run(ctx)
    best = result.candidates[result.ranking[0]]
    assert best.answer == expected and best.score == 1.0
    assert result.details["answer_weights"] == {expected: 1.0, "63": 0.0}
