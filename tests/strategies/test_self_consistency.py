import pytest

from ponder.core.answers import exact_totals
from ponder.strategies.budget import BudgetParams
from ponder.strategies.self_consistency import (
    SelfConsistency,
    SelfConsistencyParams,
    leader_probability,
    vote_decided,
)
from tests.scripted import ScriptedEngine
from tests.strategies.helpers import make_context

# A sample that is still thinking when the short ones have finished (tokens are characters).
LONG = "Let me think about this carefully. " * 4 + "The answer is 6"


async def test_majority_vote_in_one_batched_call() -> None:
    engine = ScriptedEngine(texts=["It is 5", "6", "5.0", "The answer is 5", "no idea at all" * 9])
    ctx = make_context(engine, max_tokens=256)
    strategy = SelfConsistency(SelfConsistencyParams(strategy="self_consistency", n=5))
    result = await strategy.run(ctx)
    assert len(engine.calls) == 1 and engine.calls[0].n == 5
    assert result.ranking[0] == 0
    assert result.details["votes"] == {"5": 3.0, "6": 1.0}
    assert result.candidates[0].score == 0.75
    assert result.candidates[4].answer is None
    assert ctx.usage.completion_tokens == sum(len(c.sequence.text) for c in result.candidates)


async def test_tie_goes_to_the_answer_seen_first() -> None:
    engine = ScriptedEngine(texts=["6", "5", "5", "6"])
    strategy = SelfConsistency(SelfConsistencyParams(strategy="self_consistency", n=4))
    result = await strategy.run(make_context(engine))
    assert result.candidates[result.ranking[0]].answer == "6"
    # The second choice is the runner-up's first sample.
    assert result.ranking[:2] == [0, 1]


def test_leader_probability_is_the_beta_posterior() -> None:
    # P(Binomial(a + b + 1, 1/2) <= a)
    assert leader_probability(4, 0) == 31 / 32
    assert leader_probability(3, 0) == 15 / 16
    assert leader_probability(2, 2) == 0.5
    assert leader_probability(6, 2) == sum(__import__("math").comb(9, k) for k in range(7)) / 512


@pytest.mark.parametrize(
    ("answers", "running", "threshold", "decided"),
    [
        (["5", "5", "5", "5"], 4, 0.95, True),  # 31/32 >= 0.95
        (["5", "5", "5"], 5, 0.95, False),  # 15/16 < 0.95, and fewer than min_samples
        (["5", "5", "5", "6"], 4, 0.95, False),  # 3 against 1: 0.8125
        (["5", "5", "5", "6"], 1, 1.0, True),  # one left cannot overturn 3 to 1
        (["5", "5", "6"], 1, 1.0, False),  # one left could tie, and a tie may go to "6"
        ([None, None], 6, 0.95, False),  # nothing to vote on
    ],
)
def test_vote_decided(answers: list, running: int, threshold: float, decided: bool) -> None:
    assert (
        vote_decided(
            exact_totals(answers),
            finished=len(answers),
            running=running,
            min_samples=4,
            threshold=threshold,
        )
        is decided
    )


async def test_adaptive_starts_all_at_once_and_stops_the_rest_when_decided() -> None:
    engine = ScriptedEngine(texts=["5", "It is 5", "5", "5.0", LONG, LONG, LONG, LONG])
    params = SelfConsistencyParams(strategy="self_consistency", n=8, adaptive=True)
    ctx = make_context(engine, max_tokens=256)
    result = await SelfConsistency(params).run(ctx)
    # One engine call for all eight, as the fixed strategy makes: never more rounds.
    assert len(engine.calls) == 1 and engine.calls[0].n == 8
    assert result.details["stopped_early"] is True and result.details["stopped"] == 4
    assert result.details["votes"] == {"5": 4.0}
    assert result.candidates[result.ranking[0]].answer == "5"
    stopped = [c for c in result.candidates if c.sequence.finish_reason == "abort"]
    assert len(stopped) == 4 and all(c.answer is None for c in stopped)
    assert all(0 < c.sequence.num_tokens < len(LONG) for c in stopped)
    assert sorted(engine.aborted) == [f"{engine.calls[0].request_id}-{i}" for i in range(4, 8)]
    # Every token generated is counted, the stopped samples' too, and fewer than all of them.
    counted = sum(c.sequence.num_tokens for c in result.candidates)
    assert ctx.usage.completion_tokens == ctx.budget.tokens_used == counted
    assert counted < 4 * len(LONG) and ctx.usage.engine_calls == 1
    # Stopped samples are ranked last: they are never returned as a choice.
    assert all(result.candidates[i].sequence.finish_reason != "abort" for i in result.ranking[:4])


async def test_adaptive_keeps_every_sample_while_the_vote_is_split() -> None:
    engine = ScriptedEngine(texts=["5", "6", "5", "6", "5", "6", "5", "5"])
    params = SelfConsistencyParams(strategy="self_consistency", n=8, adaptive=True)
    ctx = make_context(engine, seed=11)
    result = await SelfConsistency(params).run(ctx)
    assert result.details == {"votes": {"5": 5.0, "6": 3.0}, "stopped_early": False, "stopped": 0}
    assert engine.aborted == []


async def test_adaptive_stops_when_the_rest_cannot_change_the_winner() -> None:
    engine = ScriptedEngine(texts=["5", "5", "5", LONG, LONG])
    # The posterior rule is off at threshold 1: only certainty stops the rest.
    params = SelfConsistencyParams(strategy="self_consistency", n=5, adaptive=True, threshold=1.0)
    result = await SelfConsistency(params).run(make_context(engine, max_tokens=256))
    assert result.details["stopped"] == 2
    assert result.candidates[result.ranking[0]].answer == "5"


async def test_token_budget_shrinks_the_sample_and_is_reported() -> None:
    engine = ScriptedEngine(texts=["5" * 10, "5" * 10, "6" * 10])
    ctx = make_context(engine, max_tokens=10, budget=BudgetParams(max_tokens=25))
    params = SelfConsistencyParams(strategy="self_consistency", n=8)
    result = await SelfConsistency(params).run(ctx)
    # 25 tokens fit two samples of at most 10 tokens: never more than the budget.
    assert engine.calls[0].n == 2
    assert len(result.candidates) == 2
    assert ctx.usage.completion_tokens == 20 <= 25
    assert ctx.budget.exhausted == "tokens"


async def test_token_budget_shrinks_the_adaptive_sample_too() -> None:
    engine = ScriptedEngine(texts=["5", "6"] * 8)
    ctx = make_context(engine, max_tokens=1, budget=BudgetParams(max_tokens=6))
    params = SelfConsistencyParams(strategy="self_consistency", n=16, adaptive=True)
    result = await SelfConsistency(params).run(ctx)
    assert [c.n for c in engine.calls] == [6]
    assert len(result.candidates) == 6 and ctx.usage.completion_tokens == 6
    assert ctx.budget.exhausted == "tokens"


async def test_the_deadline_stops_every_watched_sample_and_counts_what_they_made() -> None:
    engine = ScriptedEngine(texts=["x" * 500] * 4, token_delay=0.001)
    ctx = make_context(engine, max_tokens=500, budget=BudgetParams(deadline_s=0.05))
    params = SelfConsistencyParams(strategy="self_consistency", n=4, adaptive=True)
    result = await SelfConsistency(params).run(ctx)
    assert ctx.budget.exhausted == "deadline"
    assert all(c.sequence.finish_reason == "abort" for c in result.candidates)
    assert result.details["stopped"] == 4 and len(engine.aborted) == 4
    counted = sum(c.sequence.num_tokens for c in result.candidates)
    assert counted < 4 * 500 and ctx.usage.completion_tokens == counted
