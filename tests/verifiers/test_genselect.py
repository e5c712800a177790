"""The `genselect` verifier: one list-wise prompt per pick, the pick parsed, shares as scores."""

from __future__ import annotations

import re

import pytest

from ponder.strategies.best_of_n import BestOfN, BestOfNParams
from ponder.verifiers.base import Candidate, Question, VerifierError
from ponder.verifiers.genselect import (
    GENSELECT_PROMPT,
    NEUTRAL,
    GenSelectVerifier,
    parse_pick,
    rotations,
)
from ponder.verifiers.loading import load_configured_verifiers
from tests.scripted import ScriptedEngine
from tests.strategies.helpers import make_context

QUESTION = Question(({"role": "user", "content": "What is 2 + 3?"},))
SELECTION = GENSELECT_PROMPT.split("{question}")[0]


def shown(prompt: str) -> list[str]:
    """The candidate texts of a selection prompt, in the order they are shown."""
    return re.findall(r"Solution \d+:\n(.*?)(?:\n\n|$)", prompt.split("solutions to")[1])


def pick_the_text(correct: str, *, otherwise: str = "Best solution: 1"):
    """A responder that names the shown position of `correct` in selection prompts."""

    def respond(prompt: str, n: int) -> list[str]:
        assert SELECTION in prompt
        texts = shown(prompt)
        if correct in texts:
            return [f"Solution 1 is wrong.\nBest solution: {texts.index(correct) + 1}"] * n
        return [otherwise] * n

    return respond


@pytest.mark.parametrize(
    ("reply", "pick"),
    [
        ("Best solution: 2", 1),
        ("Solution 1 is wrong, solution 3 too.\nThe best solution is Solution 3.", 2),
        ("**Best solution:** #1", 0),
        ("\\boxed{2}", 1),
        ("2", 1),
        ("I choose solution 3", 2),
        ("Best solution: 7", None),
        ("Best solution: 0", None),
        ("They all look fine.", None),
        ("Best solution: " + "9" * 5000, None),
    ],
)
def test_parses_the_pick_or_none(reply: str, pick: int | None) -> None:
    assert parse_pick(reply, 3) == pick


def test_rotations_show_each_pick_a_different_first_candidate() -> None:
    assert rotations(3, 3) == [[0, 1, 2], [1, 2, 0], [2, 0, 1]]
    assert rotations(4, 2) == [[0, 1, 2, 3], [2, 3, 0, 1]]
    assert rotations(2, 1) == [[0, 1]]


async def test_one_batched_call_of_picks_and_vote_shares_as_scores() -> None:
    engine = ScriptedEngine(responder=pick_the_text("2 + 3 = 5"))
    verifier = GenSelectVerifier(engine, picks=3)
    texts = ["2 + 3 = 6", "2 + 3 = 5", "2 + 3 = 4"]
    scores = await verifier.score(QUESTION, [Candidate(t) for t in texts], request_id="r")
    assert scores.values == (0.0, 1.0, 0.0)
    (call,) = engine.calls
    assert len(call.prompts) == 3 and call.n == 1 and call.options.temperature == 0.0
    # Each pick saw the candidates in its own rotation.
    assert [shown(p) for p in call.prompt_texts()] == [
        [texts[i] for i in order] for order in rotations(3, 3)
    ]
    replies = sum(len(pick_the_text("2 + 3 = 5")(p, 1)[0]) for p in call.prompt_texts())
    assert scores.tokens == sum(len(p) for p in call.prompts) + replies


async def test_rotation_spreads_a_bias_for_the_first_position() -> None:
    engine = ScriptedEngine(responder=lambda prompt, n: ["Best solution: 1"] * n)
    scores = await GenSelectVerifier(engine, picks=2).score(
        QUESTION, [Candidate("5"), Candidate("6")], request_id="r"
    )
    assert scores.values == (0.5, 0.5)


async def test_no_pick_falls_back_to_neutral_scores() -> None:
    engine = ScriptedEngine(responder=lambda prompt, n: ["Hard to say."] * n)
    scores = await GenSelectVerifier(engine, picks=2).score(
        QUESTION, [Candidate("5"), Candidate("6"), Candidate("7")], request_id="r"
    )
    assert scores.values == (NEUTRAL,) * 3 and scores.tokens > 0


async def test_a_lone_candidate_is_the_pick_without_a_call() -> None:
    engine = ScriptedEngine()
    scores = await GenSelectVerifier(engine).score(QUESTION, [Candidate("5")], request_id="r")
    assert scores.values == (1.0,) and engine.calls == []


async def test_best_of_n_returns_the_selected_candidate_and_counts_its_tokens() -> None:
    candidates = ["The answer is 6", "2 + 3 = 5, so 5", "7"]
    texts = iter(candidates)

    def respond(prompt: str, n: int) -> list[str]:
        if SELECTION in prompt:
            return pick_the_text("2 + 3 = 5, so 5")(prompt, n)
        return [next(texts) for _ in range(n)]

    engine = ScriptedEngine(responder=respond)
    ctx = make_context(engine)
    params = BestOfNParams(strategy="best_of_n", n=3, verifier="genselect")
    result = await BestOfN(params).run(ctx)
    assert result.ranking[0] == 1 and result.candidates[1].answer == "5"
    assert [c.score for c in result.candidates] == [0.0, 1.0, 0.0]
    selection = engine.calls[1]
    assert ctx.usage.verifier_calls == 3
    assert ctx.usage.verifier_tokens == len(selection.prompts[0]) + len(
        "Solution 1 is wrong.\nBest solution: 2"
    )


def test_registered_loaded_by_default_and_its_options_checked() -> None:
    engine = ScriptedEngine()
    verifier = load_configured_verifiers(engine)["genselect"]
    assert isinstance(verifier, GenSelectVerifier)
    assert verifier.kind == "generative" and verifier.model == engine.model_name
    with pytest.raises(VerifierError):
        GenSelectVerifier(engine, picks=0)
