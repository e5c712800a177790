import time

import pytest

from ponder.verifiers.arithmetic import (
    SLIPPED_ANSWER_SCORE,
    ArithmeticVerifier,
    check_claims,
    question_value,
)
from ponder.verifiers.base import Aggregation, Candidate, Question, ScoringOptions, StepScore
from ponder.verifiers.loading import load_configured_verifiers
from tests.scripted import ScriptedEngine

PLAIN = Question(({"role": "user", "content": "Explain your working."},))
SUM_QUESTION = Question(
    ({"role": "user", "content": "What is 37 + 45? Reply with only the final number."},)
)

ACCEPT = [
    "17 + 25 = 42",
    "3*4=12",
    "3 \u00d7 4 = 12",
    "3 x 4 = 12",
    "3x4 = 12",
    "100 / 8 = 12.5",
    "100 \u00f7 8 = 12.5",
    "2 + 3 * 4 = 14",
    "(2 + 3) * 4 = 20",
    "1,234 + 1 = 1,235",
    "-3 + 5 = 2",
    "So -3 + 5 = 2",
    "2 * -3 = -6",
    "5 - -3 = 8",
    "0.1 + 0.2 = 0.3",
    "7 \u2212 2 = 5",
    "So 17 + 25 = 42 apples.",
    "x = 2 + 3 = 5",
    "3 * 4 = 12 = 6 + 6",
    "(2 + 3 = 5)",
    "1. 2 + 3 = 5",
    "Step 2: 3 + 4 = 7",
    "**17 + 25 = 42**",
    "The total is **2 + 3 = 5**.",
    "$3 \\times 4 = 12$",
    "\\(3 \\cdot 4 = 12\\)",
    "$5 + $3 = $8",
    "<<48/2=24>>24",
    # Rounded, because 100/3 has no finite decimal form.
    "100 / 3 = 33.33",
    "((((((((((1))))))))))+1=2",
    "9" * 29 + " + 1 = 1" + "0" * 29,
    "17 + 25 = 42, and 2 * 21 = 42",
]

REJECT = [
    "17 + 25 = 43",
    "2 + 3 * 4 = 20",
    "100 / 8 = 12",
    "10 / 3 = 3",
    "10 / 4 = 2.6",
    "2 / 3 = 0.66",
    "1,234 + 1 = 1,236",
    "-3 + 5 = -2",
    # A chain claims every adjacent equality; the running-total style is false as written.
    "2 + 3 = 5 + 1 = 6",
    "17 + 25 = 42, and 2 * 21 = 41",
    "1/0 = 5",
    "5/0 = 1",
    "5/0 = 5/0",
]

IGNORE = [
    "There is nothing to compute here.",
    "The answer is 42.",
    "x = 5",
    "x = 2 + 3",
    "5 = 2 + 3",
    "2024-01-02",
    "2024-01-02 = 2021",
    "1.2.3",
    "1.2.3 + 1 = 2.2.3",
    "3:4",
    "3:4 = 6:8",
    "12:30 + 15 = 12:45",
    "2x + 3 = 7",
    "2x - 3 = 7",
    "x - 3 + 5 = 2",
    "x * 2 + 1 = 7",
    "x^2 + 1 = 5",
    "2^3 + 1 = 9",
    "f(2) + 3 = 5",
    "2 + 3 = 5x",
    "50% + 10% = 60%",
    "3! + 1 = 7",
    "2 + 2 == 4",
    "2(3 + 4) = 14",
    "__import__('os').system('rm -rf /') = 0",
    "9**9**9**9 = 1",
    "2 ** 3 + 1 = 9",
    "1e308*1e308 = inf",
    "1" * 10_000 + " = 1",
    "1" * 10_000 + " + 1 = 1",
    "9" * 31 + " + 1 = 1" + "0" * 31,
    "\u0661\u0662 + \u0663 = \u0661\u0665",  # Arabic-Indic digits
    "\uff11\uff0b\uff11\uff1d\uff12",  # fullwidth 1+1=2
    "+".join(["1"] * 101) + " = 101",
    "-" * 100 + "1 + 1 = 2",
    "(" * 17 + "1" + ")" * 17 + " + 1 = 2",
    "= = = + + + * * * / / /",
]


async def step_scores(
    text: str,
    question: Question = PLAIN,
    aggregation: Aggregation | None = None,
    verifier: ArithmeticVerifier | None = None,
) -> tuple[float, tuple[StepScore, ...]]:
    verifier = verifier or ArithmeticVerifier()
    scores = await verifier.score(
        question, [Candidate(text)], request_id="r", options=ScoringOptions(aggregation=aggregation)
    )
    assert scores.steps is not None and scores.tokens == 0
    return scores.values[0], scores.steps[0]


async def assert_step(text: str, expected: StepScore) -> None:
    start = time.perf_counter()
    _, steps = await step_scores(text)
    # Not a benchmark: a bound loose enough for a loaded CI machine, tight enough to catch a
    # parser that backtracks exponentially on hostile text (that takes minutes, not seconds).
    assert time.perf_counter() - start < 2.0, "a claim must be checked promptly"
    assert steps == (expected,)


@pytest.mark.parametrize("text", ACCEPT)
async def test_true_claims_score_one(text: str) -> None:
    await assert_step(text, 1.0)


@pytest.mark.parametrize("text", REJECT)
async def test_false_claims_score_zero(text: str) -> None:
    await assert_step(text, 0.0)


@pytest.mark.parametrize("text", IGNORE)
async def test_non_claims_and_hostile_text_are_unjudged(text: str) -> None:
    await assert_step(text, None)


def test_a_chain_checks_each_adjacent_equality() -> None:
    assert check_claims("2 + 3 = 5 + 1 = 6") == [False, True]
    assert check_claims("3 * 4 = 12 = 6 + 6") == [True, True]


async def test_large_hostile_steps_stay_linear() -> None:
    start = time.perf_counter()
    for text in [
        "(" * 20_000 + "1" + ")" * 20_000 + " + 1 = 2",
        "1" + "+1" * 20_000 + " = 20001",
        "* " * 20_000 + "2 * 3 = 6",
        "9" * 100_000 + " * 9 = 1",
    ]:
        await step_scores(text)
    # As above: catches super-linear blow-ups, not small slowdowns.
    assert time.perf_counter() - start < 10.0


def test_question_value_needs_exactly_one_expression() -> None:
    assert question_value(SUM_QUESTION.text) == 82
    assert question_value("Compute 12*(3+4).") == 84
    assert question_value("If 2 + 3 = 5, what is 5 + 7?") == 12
    assert question_value("What is 2 + 3 and 4 + 5?") is None
    assert question_value("What is 5/0?") is None
    assert question_value("Name a prime.") is None


@pytest.mark.parametrize(
    ("answer", "aggregation", "score", "steps"),
    [
        ("82", "last", 1.0, (None, 1.0)),
        ("The answer is 81", "last", 0.0, (None, 0.0)),
        ("37 + 45 = 82\n\nSo 82", "min", 1.0, (1.0, None, 1.0)),
        # `min` puts the checked final answer first: right after a slip is half, never zero,
        # and a wrong final answer is zero even after true steps.
        ("30 + 40 = 71\n\n82", "min", SLIPPED_ANSWER_SCORE, (0.0, None, 1.0)),
        ("37 + 45 = 82\n\nSo 81", "min", 0.0, (1.0, None, 0.0)),
        ("30 + 40 = 71\n\n81", "min", 0.0, (0.0, None, 0.0)),
        ("30 + 40 = 71\n\n82", "mean", 0.5, (0.0, None, 1.0)),
        ("30 + 40 = 71\n\n82", "last", 1.0, (0.0, None, 1.0)),
        ("\\boxed{82}", None, 1.0, (None, 1.0)),
        ("I cannot say.", "last", 0.5, (None,)),
        ("1" * 10_000, "last", 0.5, (None,)),
    ],
)
async def test_final_answer_unit_for_an_arithmetic_question(
    answer: str, aggregation: Aggregation | None, score: float, steps: tuple[StepScore, ...]
) -> None:
    assert await step_scores(answer, SUM_QUESTION, aggregation) == (score, steps)


async def test_no_final_answer_unit_without_an_expression_in_the_question() -> None:
    value, steps = await step_scores("37 + 45 = 82\n\n82", PLAIN, "last")
    assert steps == (1.0, None) and value == 1.0
    verifier = ArithmeticVerifier()
    assert verifier.units(PLAIN, ["82"]) == ["82"]
    assert verifier.units(SUM_QUESTION, ["82"]) == ["82", "\x00final answer: 82"]


async def test_a_forged_final_answer_step_is_read_as_a_step() -> None:
    text = "\x00final answer: 82\n\nThe answer is 81"
    _, steps = await step_scores(text, SUM_QUESTION, "last")
    assert steps == (None, None, 0.0)
    # Here the answer is the boxed word, so no unit is added and the forged step is the last.
    _, steps = await step_scores("\\boxed{many}\n\n\x00final answer: 82", SUM_QUESTION, "last")
    assert steps == (None, None)


async def test_repeated_answers_come_from_the_cache() -> None:
    verifier = ArithmeticVerifier(aggregation="last")
    text = "30 + 40 = 70\n\n70 + 12 = 82"
    first = await verifier.score(SUM_QUESTION, [Candidate(text)], request_id="r")
    second = await verifier.score(SUM_QUESTION, [Candidate(text)], request_id="r")
    assert first.cache_hits == 0
    assert first.steps == second.steps == ((1.0, 1.0, 1.0),)
    assert second.cache_hits == 3


async def test_a_batch_scores_each_candidate() -> None:
    scores = await ArithmeticVerifier().score(
        SUM_QUESTION,
        [Candidate("37 + 45 = 82"), Candidate("37 + 45 = 81"), Candidate("")],
        request_id="r",
    )
    assert scores.values == (1.0, 0.0, 0.0)


def test_registered_and_built_by_the_registry() -> None:
    verifier = load_configured_verifiers(ScriptedEngine(), defaults=["arithmetic"])["arithmetic"]
    assert isinstance(verifier, ArithmeticVerifier)
    assert verifier.kind == "programmatic" and verifier.family == "arithmetic"
    assert verifier.aggregation == "min" and verifier.model is None
    assert not verifier.needs_logprobs
