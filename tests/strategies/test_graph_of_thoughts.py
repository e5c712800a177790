"""Graph of Thoughts with a scripted model: what is merged, what is refined, what wins."""

import asyncio

import pytest
from pydantic import ValidationError

from ponder.core.errors import StrategyInputError
from ponder.strategies.budget import BudgetParams
from ponder.strategies.graph_of_thoughts import GraphOfThoughts, GraphOfThoughtsParams
from tests.scripted import ScriptedEngine
from tests.strategies.helpers import generation_calls, make_context

SAMPLES = ["The answer is 6", "The answer is 5", "I think 5"]
# Aggregation prompts, recognised by their first solution, and what they merge into.
MERGES = {
    "Solution 1:\nThe answer is 5\n\nSolution 2:\nI think 5\n\n": ["Merged: 5", "Merged: 6"],
    "Solution 1:\nRefined: 5\n\nSolution 2:\nMerged: 5\n\n": ["Final: 5", "Final: 7"],
}
REFINES = {
    "Merged: 5": "Refined: 5",
    "Merged: 6": "Refined: 6",
    "Final: 5": "Polished: 5",
    "Final: 7": "Polished: 7",
}
JUDGE = {
    "The answer is 6": 0.2,
    "The answer is 5": 0.7,
    "I think 5": 0.5,
    "Merged: 5": 0.8,
    "Merged: 6": 0.1,
    "Refined: 5": 0.9,
    "Refined: 6": 0.3,
    "Final: 5": 0.85,
    "Final: 7": 0.05,
    "Polished: 5": 0.95,
    "Polished: 7": 0.15,
}


def responder(prompt: str, n: int) -> list[str]:
    if "Combine the best parts" in prompt:
        (key,) = [k for k in MERGES if k in prompt]
        return MERGES[key][:n]
    if "write an improved solution" in prompt:
        (merged,) = [m for m in REFINES if f"solution to this question:\n\n{m}\n\n" in prompt]
        return [REFINES[merged]] * n
    return SAMPLES[:n]


def scripted() -> ScriptedEngine:
    return ScriptedEngine(responder=responder, judge=lambda answer: JUDGE[answer])


def got(**params: object) -> GraphOfThoughts:
    return GraphOfThoughts(
        GraphOfThoughtsParams(strategy="graph_of_thoughts", return_trace=True, n=3, **params)
    )


def judge_calls(engine: ScriptedEngine) -> list:
    return [c for c in engine.calls if c not in generation_calls(engine)]


async def test_merges_the_best_refines_the_merge_and_the_best_solution_wins() -> None:
    engine = scripted()
    ctx = make_context(engine)
    result = await got(rounds=1, merge=2, aggregations=2).run(ctx)
    texts = [c.sequence.text for c in result.candidates]
    assert texts == [*SAMPLES, "Merged: 5", "Merged: 6", "Refined: 5", "Refined: 6"]
    # The aggregation prompt holds the two best solutions, best first, numbered.
    calls = generation_calls(engine)
    (aggregate,) = calls[1].prompt_texts()
    assert "Solution 1:\nThe answer is 5\n\nSolution 2:\nI think 5\n\n" in aggregate
    assert "The answer is 6" not in aggregate and "What is 2 + 3?" in aggregate
    # Both merged solutions were refined in one call, each prompt holding its merged solution.
    refine = calls[2].prompt_texts()
    assert len(refine) == 2 and calls[2].n == 1
    assert "\n\nMerged: 5\n\n" in refine[0] and "\n\nMerged: 6\n\n" in refine[1]
    assert [(len(c.prompts), c.n) for c in calls] == [(1, 3), (1, 2), (2, 1)]
    # One verifier call for the samples, one for everything the round made.
    assert [len(c.prompts) for c in judge_calls(engine)] == [3, 4]
    assert result.ranking == [5, 3, 1, 2, 6, 0, 4]
    assert result.candidates[result.ranking[0]].answer == "5"
    graph = result.details["graph"]
    assert [(g["operation"], g["parents"], g["round"]) for g in graph] == [
        ("generate", [], 0),
        ("generate", [], 0),
        ("generate", [], 0),
        ("aggregate", [1, 2], 1),
        ("aggregate", [1, 2], 1),
        ("refine", [3], 1),
        ("refine", [4], 1),
    ]
    assert [g["id"] for g in graph if g.get("kept")] == [1, 3, 5]
    assert result.details["rounds"] == 1
    assert ctx.usage.completion_tokens == sum(g["tokens"] for g in graph)


async def test_the_next_round_merges_the_best_of_the_pool() -> None:
    engine = scripted()
    ctx = make_context(engine)
    strategy = got(rounds=2)
    result = await strategy.run(ctx)
    # Round 2 merged Refined: 5 (0.9) and Merged: 5 (0.8), the best two kept after round 1.
    graph = result.details["graph"]
    assert [(g["operation"], g["parents"]) for g in graph[7:]] == [
        ("aggregate", [5, 3]),
        ("aggregate", [5, 3]),
        ("refine", [7]),
        ("refine", [8]),
    ]
    best = result.candidates[result.ranking[0]]
    assert best.sequence.text == "Polished: 5" and best.score == pytest.approx(0.95)
    assert [g["id"] for g in graph if g.get("kept")] == [5, 7, 9]
    assert len(result.candidates) == strategy.params.candidates() == 11
    assert ctx.usage.completion_tokens == sum(g["tokens"] for g in graph)
    assert ctx.usage.completion_tokens <= strategy.planned_tokens(ctx.options.max_tokens, 1)


async def test_token_budget_stops_after_the_round_it_cut_short() -> None:
    engine = scripted()
    ctx = make_context(engine, max_tokens=16, budget=BudgetParams(max_tokens=70))
    result = await got(rounds=2).run(ctx)
    # 39 tokens of samples left room for one merged solution of 16 tokens, and its refinement.
    assert [(len(c.prompts), c.n) for c in generation_calls(engine)] == [(1, 3), (1, 1), (1, 1)]
    assert ctx.budget.exhausted == "tokens"
    assert ctx.usage.completion_tokens == 39 + 9 + 10 <= 70
    assert result.details["rounds"] == 1
    assert [g["parents"] for g in result.details["graph"][3:]] == [[1, 2], [3]]
    assert result.candidates[result.ranking[0]].sequence.text == "Refined: 5"


async def test_cancelling_mid_round_aborts_its_engine_requests() -> None:
    engine = scripted()

    def slow_after_the_first_scores(answer: str) -> float:
        engine.delay = 5.0
        return JUDGE[answer]

    engine.judge = slow_after_the_first_scores
    task = asyncio.create_task(got().run(make_context(engine)))
    await asyncio.sleep(0.05)
    assert engine.running_requests() == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert engine.running_requests() == 0
    # The aggregation (the call after sampling, g0, and scoring, v1) was aborted.
    assert engine.aborted == ["req-g2-0"]


async def test_unknown_verifier_is_a_client_error_before_any_generation() -> None:
    engine = scripted()
    with pytest.raises(StrategyInputError) as raised:
        await got(verifier="oracle").run(make_context(engine))
    assert raised.value.param == "tts.verifier"
    assert engine.calls == []


def test_params_and_worst_case() -> None:
    params = GraphOfThoughtsParams(strategy="graph_of_thoughts")
    assert (params.n, params.rounds, params.merge, params.aggregations) == (4, 2, 2, 2)
    assert params.verifier_names() == {"tts.verifier": "self_judge"}
    assert params.candidates() == 4 + 2 * 2 * 2
    assert GraphOfThoughts(params).planned_tokens(100, 1) == 12 * 100
    with pytest.raises(ValidationError):
        GraphOfThoughtsParams(strategy="graph_of_thoughts", n=2, merge=3)
    with pytest.raises(ValidationError):
        GraphOfThoughtsParams(strategy="graph_of_thoughts", rounds=9)
