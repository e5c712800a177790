"""Recursive self-aggregation with a scripted model: subsets, rounds, the vote and the budget."""

from __future__ import annotations

import re
from collections import Counter

import pytest
from pydantic import ValidationError

from ponder.core.answers import extract_answer
from ponder.core.errors import StrategyInputError
from ponder.strategies.budget import BudgetParams
from ponder.strategies.registry import strategy_class
from ponder.strategies.rsa import RecursiveSelfAggregation, RecursiveSelfAggregationParams
from tests.scripted import ScriptedEngine
from tests.strategies.helpers import generation_calls, make_context

SAMPLES = ["The answer is 6", "The answer is 5", "I think 5", "It is 7"]
AGGREGATE = "Combine the best parts"
IMPROVE = "write an improved solution"


def quoted(prompt: str) -> list[str]:
    """The solutions an aggregation or refinement prompt quotes, in order."""
    if AGGREGATE in prompt:
        return re.findall(r"Solution \d+:\n(.*?)\n\n", prompt)
    return [prompt.split("solution to this question:\n\n", 1)[1].split("\n\nCheck", 1)[0]]


def responder(prompt: str, n: int) -> list[str]:
    """Aggregating answers with the quoted solutions' most common answer (first seen on a tie)."""
    if AGGREGATE not in prompt and IMPROVE not in prompt:
        return SAMPLES[:n]
    answers = Counter(extract_answer(t) for t in quoted(prompt))
    return [f"Combined: {answers.most_common(1)[0][0]}"] * n


def rsa(**params: object) -> RecursiveSelfAggregation:
    return RecursiveSelfAggregation(
        RecursiveSelfAggregationParams(strategy="rsa", return_trace=True, **params)
    )


async def test_each_round_aggregates_random_subsets_of_the_population() -> None:
    engine = ScriptedEngine(responder=responder)
    ctx = make_context(engine, seed=3)
    result = await rsa(population=4, subset=3, rounds=2).run(ctx)
    graph = result.details["graph"]
    assert result.details["rounds"] == 2 and len(graph) == 12
    calls = generation_calls(engine)
    # One call samples the population; each round is one call of `population` prompts.
    assert [(len(c.prompts), c.n) for c in calls] == [(1, 4), (4, 1), (4, 1)]
    texts = {node["id"]: result.candidates[node["id"]].sequence.text for node in graph}
    for call, round_ in zip(calls[1:], (1, 2), strict=True):
        made = [node for node in graph if node["round"] == round_]
        assert len(made) == 4
        for prompt, node in zip(call.prompt_texts(), made, strict=True):
            # Each new solution quotes K distinct solutions of the previous round: its parents.
            assert len(set(node["parents"])) == 3
            assert {graph[p]["round"] for p in node["parents"]} == {round_ - 1}
            assert quoted(prompt) == [texts[p] for p in node["parents"]]
    # 5 is the majority of the last population.
    assert result.candidates[result.ranking[0]].answer == "5"
    assert result.ranking[:4] == [node["id"] for node in graph if node["round"] == 2]
    assert ctx.usage.completion_tokens == sum(node["tokens"] for node in graph)
    assert ctx.usage.completion_tokens <= rsa(population=4, subset=3, rounds=2).planned_tokens(
        ctx.options.max_tokens, 1
    )


async def test_a_seeded_request_chooses_the_same_subsets() -> None:
    async def parents(seed: int) -> list[list[int]]:
        ctx = make_context(ScriptedEngine(responder=responder), seed=seed)
        result = await rsa(population=4, rounds=2).run(ctx)
        return [node["parents"] for node in result.details["graph"]]

    first = await parents(7)
    assert await parents(7) == first
    assert any([await parents(seed) != first for seed in range(8, 12)])


async def test_a_subset_of_one_is_a_refinement() -> None:
    engine = ScriptedEngine(responder=responder)
    result = await rsa(population=2, subset=1, rounds=1).run(make_context(engine, seed=1))
    round_one = generation_calls(engine)[1]
    assert all(IMPROVE in p and AGGREGATE not in p for p in round_one.prompt_texts())
    assert [len(n["parents"]) for n in result.details["graph"][2:]] == [1, 1]


async def test_a_verifier_weights_the_final_vote() -> None:
    # 7 is one vote of four in the last population but the judge trusts it most.
    texts = ["It is 7", "I think 5", "The answer is 5", "Maybe 5"]
    judged = {"It is 7": 0.9, "I think 5": 0.2, "The answer is 5": 0.2, "Maybe 5": 0.2}

    replies = iter(texts)

    def keep(prompt: str, n: int) -> list[str]:
        # The population, and then the same texts again as the round's refinements, in order.
        return [next(replies) for _ in range(n)] if IMPROVE in prompt else texts[:n]

    engine = ScriptedEngine(responder=keep, judge=lambda answer: judged[answer])
    ctx = make_context(engine, seed=2)
    result = await rsa(population=4, subset=1, rounds=1, verifier="self_judge").run(ctx)
    assert result.candidates[result.ranking[0]].answer == "7"
    assert result.details["votes"] == pytest.approx({"7": 0.9, "5": 0.6})
    # Only the last population is scored, in one verifier call.
    assert ctx.usage.verifier_calls == 4
    assert [c.score for c in result.candidates[:4]] == [None] * 4
    # Without a verifier the majority wins.
    replies = iter(texts)
    engine = ScriptedEngine(responder=keep)
    plain = await rsa(population=4, subset=1, rounds=1).run(make_context(engine, seed=2))
    assert plain.candidates[plain.ranking[0]].answer == "5"


async def test_a_round_the_budget_cuts_short_does_not_replace_the_population() -> None:
    engine = ScriptedEngine(responder=responder)
    # The population costs 15 + 15 + 9 + 7 = 46 tokens; the 34 left give the round's four
    # solutions 8 tokens each, too few to finish "Combined: 5".
    ctx = make_context(engine, max_tokens=16, budget=BudgetParams(max_tokens=80))
    result = await rsa(population=4, rounds=3).run(ctx)
    graph = result.details["graph"]
    assert result.details["rounds"] == 1 and ctx.budget.exhausted == "tokens"
    assert [n["tokens"] for n in graph] == [15, 15, 9, 7, 8, 8, 8, 8]
    assert ctx.usage.completion_tokens == 78
    # The vote is the first population's: 5 twice, 6 and 7 once.
    assert result.details["votes"] == {"5": 2, "6": 1, "7": 1}
    assert result.candidates[result.ranking[0]].answer == "5"


def test_options_are_typed_and_capped() -> None:
    with pytest.raises(ValidationError, match="subset=3"):
        RecursiveSelfAggregationParams(strategy="rsa", population=2, subset=3)
    for field, value in (("population", 17), ("subset", 9), ("rounds", 9), ("rounds", 0)):
        with pytest.raises(ValidationError):
            RecursiveSelfAggregationParams(strategy="rsa", **{field: value})
    assert rsa(population=4, rounds=2).candidates() == 12


async def test_registered_and_an_unknown_verifier_is_a_client_error() -> None:
    assert strategy_class("rsa") is RecursiveSelfAggregation
    engine = ScriptedEngine(responder=responder)
    with pytest.raises(StrategyInputError) as raised:
        await rsa(verifier="oracle").run(make_context(engine))
    assert raised.value.param == "tts.verifier" and engine.calls == []
