import asyncio
import math

import pytest

from ponder.core.errors import StrategyInputError
from ponder.strategies.best_of_n import BestOfN, BestOfNParams
from ponder.strategies.budget import BudgetParams
from tests.scripted import ScriptedEngine
from tests.strategies.helpers import generation_calls, make_context

JUDGE = {"5": 0.9, "6": 0.6, "The answer is 6": 0.6, "7": 0.1}


def judged(texts: list[str]) -> ScriptedEngine:
    return ScriptedEngine(texts=list(texts), judge=lambda answer: JUDGE[answer])


def best_of_n(**params: object) -> BestOfN:
    return BestOfN(BestOfNParams(strategy="best_of_n", **params))


async def test_picks_the_candidate_the_verifier_scores_highest() -> None:
    engine = judged(["7", "5", "6"])
    ctx = make_context(engine)
    result = await best_of_n(n=3).run(ctx)
    assert result.ranking == [1, 2, 0]
    assert [c.score for c in result.candidates] == pytest.approx([0.1, 0.9, 0.6])
    # One engine call sampled all candidates; one batched judge call scored them.
    assert [c.n for c in generation_calls(engine)] == [3]
    judge_calls = [c for c in engine.calls if c not in generation_calls(engine)]
    assert len(judge_calls) == 1 and len(judge_calls[0].prompts) == 3
    assert ctx.usage.verifier_calls == 3
    assert ctx.usage.verifier_tokens == sum(len(p) + 1 for p in judge_calls[0].prompts)


async def test_weighted_sums_scores_per_answer() -> None:
    engine = judged(["5", "6", "The answer is 6"])
    result = await best_of_n(n=3, weighted=True).run(make_context(engine))
    # 6 carries 0.6 + 0.6 = 1.2 against 0.9 for 5, so a 6 wins although 5 scored highest.
    assert result.candidates[result.ranking[0]].answer == "6"
    assert result.ranking == [1, 2, 0]
    assert result.details["answer_weights"] == pytest.approx({"6": 1.2, "5": 0.9})


async def test_unweighted_would_pick_the_single_best() -> None:
    engine = judged(["5", "6", "The answer is 6"])
    result = await best_of_n(n=3).run(make_context(engine))
    assert result.candidates[result.ranking[0]].answer == "5"
    assert result.ranking[0] == 0


async def test_confidence_verifier_asks_for_logprobs_and_scores_geometric_mean() -> None:
    engine = ScriptedEngine(texts=["55", "6"], token_logprob=-0.5)
    result = await best_of_n(n=2, verifier="confidence").run(make_context(engine))
    assert engine.calls[0].options.logprobs == 0
    assert [c.score for c in result.candidates] == pytest.approx([math.exp(-0.5)] * 2)
    # Equal scores keep sampling order.
    assert result.ranking == [0, 1]


async def test_verifier_budget_leaves_the_rest_unscored() -> None:
    engine = judged(["7", "6", "5"])
    ctx = make_context(engine, budget=BudgetParams(max_verifier_calls=2))
    result = await best_of_n(n=3).run(ctx)
    assert [c.score for c in result.candidates][:2] == pytest.approx([0.1, 0.6])
    assert result.candidates[2].score is None
    assert result.ranking == [1, 0, 2]
    assert ctx.budget.exhausted == "verifier_calls"
    assert ctx.usage.verifier_calls == 2


async def test_unknown_verifier_is_a_client_error_before_any_generation() -> None:
    engine = judged(["5"])
    with pytest.raises(StrategyInputError) as raised:
        await best_of_n(n=1, verifier="oracle").run(make_context(engine))
    assert raised.value.param == "tts.verifier"
    assert engine.calls == []


async def test_deadline_returns_what_was_done() -> None:
    engine = judged(["5", "6"])
    engine.delay = 5.0
    ctx = make_context(engine, budget=BudgetParams(deadline_s=0.05))
    result = await asyncio.wait_for(best_of_n(n=2).run(ctx), timeout=2)
    assert ctx.budget.exhausted == "deadline"
    assert [c.sequence.finish_reason for c in result.candidates] == ["abort", "abort"]
    # Past the deadline, nothing is sent to the verifier.
    assert ctx.usage.verifier_calls == 0


async def test_cancelling_the_request_aborts_its_engine_requests() -> None:
    engine = judged(["5", "6"])
    engine.delay = 5.0
    ctx = make_context(engine)
    task = asyncio.create_task(best_of_n(n=2).run(ctx))
    await asyncio.sleep(0.05)
    assert engine.running_requests() == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert engine.running_requests() == 0
    assert engine.aborted == ["req-g0-0"]
