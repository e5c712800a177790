from ponder.strategies.budget import BudgetParams
from ponder.strategies.self_consistency import SelfConsistency, SelfConsistencyParams
from tests.scripted import ScriptedEngine
from tests.strategies.helpers import generation_calls, make_context


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


async def test_adaptive_stops_at_supermajority() -> None:
    engine = ScriptedEngine(texts=["5", "5", "5", "6", "7", "7", "7", "7"])
    params = SelfConsistencyParams(
        strategy="self_consistency",
        n=8,
        adaptive=True,
        round_size=4,
        min_samples=4,
        threshold=0.75,
    )
    result = await SelfConsistency(params).run(make_context(engine))
    assert [c.n for c in engine.calls] == [4]
    assert result.details["stopped_early"] is True
    assert len(result.candidates) == 4
    assert result.candidates[result.ranking[0]].answer == "5"


async def test_adaptive_keeps_sampling_while_split() -> None:
    engine = ScriptedEngine(texts=["5", "6", "5", "6", "5", "5", "5", "5"])
    params = SelfConsistencyParams(
        strategy="self_consistency", n=8, adaptive=True, round_size=4, threshold=0.75
    )
    ctx = make_context(engine, seed=11)
    result = await SelfConsistency(params).run(ctx)
    assert [c.n for c in engine.calls] == [4, 4]
    # Each round draws with a different seed, so a seeded request does not redraw the same samples.
    assert engine.calls[0].options.seed == 11 and engine.calls[1].options.seed != 11
    assert result.details == {"votes": {"5": 6.0, "6": 2.0}, "rounds": 2, "stopped_early": False}


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


async def test_budget_stops_adaptive_rounds() -> None:
    engine = ScriptedEngine(texts=["5", "6"] * 8)
    ctx = make_context(engine, max_tokens=1, budget=BudgetParams(max_tokens=6))
    params = SelfConsistencyParams(strategy="self_consistency", n=16, adaptive=True, round_size=4)
    result = await SelfConsistency(params).run(ctx)
    assert [c.n for c in generation_calls(engine)] == [4, 2]
    assert len(result.candidates) == 6
    assert ctx.budget.exhausted == "tokens"
