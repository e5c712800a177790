import math

import pytest

from ponder.core.engine import TokenLogprob
from ponder.verifiers.base import Candidate, Question, ScoringOptions, VerifierError
from ponder.verifiers.confidence import ConfidenceVerifier
from ponder.verifiers.judge import yes_probability
from ponder.verifiers.self_judge import SelfJudgeVerifier
from ponder.verifiers.step_judge import StepJudgeVerifier
from tests.scripted import ScriptedEngine

QUESTION = Question(({"role": "user", "content": "What is 2 + 3?"},))


def test_yes_probability_sums_spellings_and_normalises() -> None:
    pairs = [(" Yes", math.log(0.3)), ("yes", math.log(0.1)), ("No", math.log(0.2)), ("Maybe", -1)]
    assert yes_probability(pairs) == pytest.approx(0.4 / 0.6)


def test_yes_probability_missing_word_gets_the_floor_not_certainty() -> None:
    pairs = [("Yes", math.log(0.5)), ("The", math.log(0.1)), ("I", math.log(0.05))]
    assert yes_probability(pairs) == pytest.approx(0.5 / 0.55)
    assert yes_probability([("The", -1.0)]) == 0.5


async def test_self_judge_scores_all_candidates_in_one_greedy_call() -> None:
    engine = ScriptedEngine(judge=lambda answer: {"5": 0.8, "6": 0.25}[answer])
    verifier = SelfJudgeVerifier(engine=engine)
    scores = await verifier.score(QUESTION, [Candidate("5"), Candidate("6")], request_id="r")
    assert scores.values == pytest.approx((0.8, 0.25))
    assert len(engine.calls) == 1
    call = engine.calls[0]
    assert len(call.prompts) == 2 and call.n == 1
    assert call.options.max_tokens == 1 and call.options.temperature == 0.0
    assert call.options.logprobs == 20
    assert (
        "What is 2 + 3?" in call.prompt_texts()[0]
        and "Proposed answer:\n5" in (call.prompt_texts()[0])
    )
    assert scores.tokens == sum(len(p) + 1 for p in call.prompts)


async def test_self_judge_keeps_the_end_of_an_answer_too_long_for_the_context() -> None:
    engine = ScriptedEngine(judge=lambda answer: 0.7, max_model_len=300)
    verifier = SelfJudgeVerifier(engine=engine)
    long_answer = "x" * 1000 + "5"
    scores = await verifier.score(QUESTION, [Candidate(long_answer)], request_id="r")
    prompt = engine.calls[0].prompts[0]
    assert len(prompt) <= 299
    assert engine.calls[0].prompt_texts()[0].count("x") < 1000
    assert "x5\n" in engine.calls[0].prompt_texts()[0]
    assert scores.values == pytest.approx((0.7,))


async def test_confidence_is_the_geometric_mean_probability() -> None:
    tokens = tuple(TokenLogprob(i, "t", lp) for i, lp in enumerate([-0.1, -0.5, -0.9]))
    scores = await ConfidenceVerifier().score(
        QUESTION, [Candidate("abc", logprobs=tokens), Candidate("", logprobs=())], request_id="r"
    )
    assert scores.values == pytest.approx((math.exp(-0.5), 0.0))


async def test_confidence_without_logprobs_is_an_error() -> None:
    with pytest.raises(VerifierError):
        await ConfidenceVerifier().score(QUESTION, [Candidate("5")], request_id="r")


async def test_step_judge_asks_about_every_step_in_context_in_one_call() -> None:
    verdicts = {"add 2 and 3": 0.9, "so 6": 0.2, "so 5": 0.8}
    engine = ScriptedEngine(judge=lambda step: verdicts[step])
    verifier = StepJudgeVerifier(engine=engine)
    candidates = [Candidate("add 2 and 3\n\nso 6"), Candidate("add 2 and 3\n\nso 5")]
    scores = await verifier.score(QUESTION, candidates, request_id="r")
    assert len(engine.calls) == 1 and len(engine.calls[0].prompts) == 3  # a shared step once
    assert scores.steps == (pytest.approx((0.9, 0.2)), pytest.approx((0.9, 0.8)))
    assert scores.values == pytest.approx((0.2, 0.8))  # min by default
    second_step = engine.calls[0].prompt_texts()[1]
    assert "Solution so far:\nadd 2 and 3" in second_step and "Next step:\nso 6" in second_step
    # A later request that extends a judged answer pays only for its new step.
    again = await verifier.score(
        QUESTION,
        [Candidate("add 2 and 3\n\nso 5")],
        request_id="r2",
        options=ScoringOptions(aggregation="mean"),
    )
    assert len(engine.calls) == 1 and again.cache_hits == 2 and again.tokens == 0
    assert again.values == pytest.approx((0.85,))


async def test_step_judge_judges_only_the_new_step_of_an_extended_answer() -> None:
    verdicts = {"add 2 and 3": 0.9, "so 5": 0.8, "answer 5": 0.7}
    engine = ScriptedEngine(judge=lambda step: verdicts[step])
    verifier = StepJudgeVerifier(engine=engine)
    await verifier.score(QUESTION, [Candidate("add 2 and 3\n\nso 5")], request_id="r")
    extended = await verifier.score(
        QUESTION, [Candidate("add 2 and 3\n\nso 5\n\nanswer 5")], request_id="r2"
    )
    # As in a beam search: the two known steps come from the cache, one new step is judged.
    assert [len(c.prompts) for c in engine.calls] == [2, 1]
    assert extended.cache_hits == 2
    assert extended.steps == (pytest.approx((0.9, 0.8, 0.7)),)
