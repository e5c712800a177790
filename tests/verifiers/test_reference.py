import pytest

from ponder.verifiers.base import Candidate, Question, ScoringOptions, VerifierError
from ponder.verifiers.loading import load_configured_verifiers
from ponder.verifiers.reference import ReferenceVerifier
from tests.scripted import ScriptedEngine

QUESTION = Question(({"role": "user", "content": "What is half of one?"},))


@pytest.mark.parametrize(
    ("answer", "reference", "score"),
    [
        ("So the result is \\boxed{1/2}", "0.5", 1.0),
        ("The answer is 12", "12.0", 1.0),
        ("1,234", "1234", 1.0),
        ("\\boxed{\\frac{1}{2}}", "1/2", 1.0),
        ("13", "12", 0.0),
        ("", "12", 0.0),
        ("I do not know, sorry, this is beyond me, and I will not guess at all today.", "12", 0.0),
        ("9" * 10_000, "12", 0.0),
    ],
)
async def test_scores_one_for_an_answer_equivalent_to_the_reference(
    answer: str, reference: str, score: float
) -> None:
    scores = await ReferenceVerifier().score(
        QUESTION, [Candidate(answer)], request_id="r", options=ScoringOptions(reference=reference)
    )
    assert scores.values == (score,) and scores.tokens == 0


async def test_scores_a_batch_in_order() -> None:
    scores = await ReferenceVerifier().score(
        QUESTION,
        [Candidate("0.5"), Candidate("2"), Candidate("\\boxed{1/2}"), Candidate("")],
        request_id="r",
        options=ScoringOptions(reference="\\frac{1}{2}"),
    )
    assert scores.values == (1.0, 0.0, 1.0, 0.0)


@pytest.mark.parametrize("reference", [None, "", "   "])
async def test_needs_a_reference(reference: str | None) -> None:
    with pytest.raises(VerifierError, match=r"tts\.reference"):
        await ReferenceVerifier().score(
            QUESTION, [Candidate("12")], request_id="r", options=ScoringOptions(reference=reference)
        )


def test_registered_and_built_by_the_registry() -> None:
    verifier = load_configured_verifiers(ScriptedEngine(), defaults=["reference"])["reference"]
    assert isinstance(verifier, ReferenceVerifier)
    assert verifier.kind == "programmatic" and verifier.family == "reference"
    assert verifier.model is None and not verifier.needs_logprobs
