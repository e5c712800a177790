"""`mcts` on scripted trees: PUCT decisions, backups, rollouts and budgets, checked by hand."""

import asyncio
import math
from typing import Any

import pytest

from ponder.strategies.base import StrategyResult
from ponder.strategies.budget import BudgetParams
from ponder.strategies.context import StrategyContext
from ponder.strategies.mcts import MCTS, MCTSParams
from tests.scripted import ScriptedEngine
from tests.strategies.helpers import generation_calls, make_context

# Continuations by partial solution (first is what a greedy rollout takes), and the step judge's
# P(yes) per step. With aggregation "last", a node's verifier score is its own step's judgment.
#
#   0 root ─┬─ 1 "A" .6 ─┬─ 3 "A1" .2
#           │            └─ 4 "A2" .3
#           └─ 2 "B" .4 ─┬─ 5 "B1" .9 ─┬─ 7 "so 6" .7  (final)
#                        │             └─ 8 "so 7" .1  (final)
#                        └─ 6 "the answer is 5" .8     (final)
STEPS = {
    "": ["A\n\n", "B\n\n"],
    "A\n\n": ["A1\n\n", "A2\n\n"],
    "B\n\n": ["B1\n\n", "the answer is 5"],
    "B\n\nB1\n\n": ["so 6", "so 7"],
}
JUDGE = {
    "A": 0.6,
    "B": 0.4,
    "A1": 0.2,
    "A2": 0.3,
    "B1": 0.9,
    "the answer is 5": 0.8,
    "so 6": 0.7,
    "so 7": 0.1,
}


def scripted(steps: dict[str, list[str]], judge: dict[str, float]) -> ScriptedEngine:
    def responder(prompt: str, n: int) -> list[str]:
        return steps[prompt.split("<assistant>", 1)[1]][:n]

    return ScriptedEngine(responder=responder, judge=lambda text: judge[text])


def setup(
    engine: ScriptedEngine, budget: BudgetParams | None = None, **params: Any
) -> tuple[MCTS, StrategyContext]:
    defaults: dict[str, Any] = {"expansions": 2, "aggregation": "last", "return_trace": True}
    mcts_params = MCTSParams(strategy="mcts", **{**defaults, **params})
    ctx = make_context(engine, budget=budget)
    ctx.scoring = mcts_params.scoring()  # as the server sets it from the request
    return MCTS(mcts_params), ctx


def nodes(result: StrategyResult) -> dict[int, dict[str, Any]]:
    return {n["id"]: n for n in result.details["tree"]}


def puct(q: float, parent_visits: int, visits: int, prior: float = 0.5, c: float = 1.0) -> float:
    return q + c * prior * math.sqrt(parent_visits) / (1 + visits)


def judge_calls(engine: ScriptedEngine) -> list:
    return [c for c in engine.calls if c not in generation_calls(engine)]


async def test_puct_selection_expansion_and_backup() -> None:
    engine = scripted(STEPS, JUDGE)
    strategy, ctx = setup(engine, simulations=5)
    result = await strategy.run(ctx)
    # 1: the root. 2: A and B have one visit each, so equal U; A has the higher Q.
    assert puct(0.6, 2, 1) > puct(0.4, 2, 1)
    # 3: A now holds A, A1, A2 (N 3, Q 1.1/3); B still one visit; U favours B enough.
    assert puct(1.1 / 3, 4, 3) == pytest.approx(0.6167, abs=1e-4)
    assert puct(0.4, 4, 1) == pytest.approx(0.9)
    # 4: root N 6; B (N 3, Q 2.1/3) over A; then under B (N 3): B1 (.9) over the answer (.8).
    assert puct(2.1 / 3, 6, 3) > puct(1.1 / 3, 6, 3)
    assert puct(0.9, 3, 1) > puct(0.8, 3, 1)
    # 5: root N 8: B (N 5, Q 2.9/5) over A; under B (N 5): the answer (N 1) over B1 (N 3, Q 1.7/3).
    assert puct(2.9 / 5, 8, 5) == pytest.approx(0.8157, abs=1e-4)
    assert puct(1.1 / 3, 8, 3) == pytest.approx(0.7202, abs=1e-4)
    assert puct(0.8, 5, 1) == pytest.approx(1.3590, abs=1e-4)
    assert puct(1.7 / 3, 5, 3) == pytest.approx(0.8462, abs=1e-4)
    assert result.details["selected"] == [0, 1, 2, 5, 6]
    assert result.details["simulations"] == 5
    # Each new child carries its own value; ancestors gain a visit and that value per child. The
    # final answer 6, selected again in simulation 5, counted its .8 a second time.
    tree = nodes(result)
    expected = {
        0: (9, 4.8),
        1: (3, 1.1),
        2: (6, 3.7),
        3: (1, 0.2),
        4: (1, 0.3),
        5: (3, 1.7),
        6: (2, 1.6),
        7: (1, 0.7),
        8: (1, 0.1),
    }
    assert {i: (n["visits"], n["value"]) for i, n in tree.items()} == {
        i: (v, pytest.approx(w)) for i, (v, w) in expected.items()
    }
    # One engine call (n=k, one prompt continuing the parent's tokens) per expansion; the final
    # answer selected in simulation 5 was not expanded.
    calls = generation_calls(engine)
    parents = ["", "A\n\n", "B\n\n", "B\n\nB1\n\n"]
    assert [(c.n, len(c.prompts)) for c in calls] == [(2, 1)] * 4
    assert [c.prompts[0] for c in calls] == [
        ctx.prompt_token_ids + engine.encode(p) for p in parents
    ]
    # One verifier call per valuation, judging only the two new steps (the rest are cached).
    assert [len(c.prompts) for c in judge_calls(engine)] == [2, 2, 2, 2]
    assert ctx.usage.verifier_calls == 8
    assert ctx.usage.completion_tokens == sum(n["tokens"] for n in tree.values()) == 41


async def test_final_by_visits_and_by_value_differ() -> None:
    results = []
    for final in ("visits", "value"):
        strategy, ctx = setup(scripted(STEPS, JUDGE), simulations=5, final=final)
        results.append(await strategy.run(ctx))
    by_visits, by_value = results
    texts = ["B\n\nB1\n\nso 6", "B\n\nB1\n\nso 7", "B\n\nthe answer is 5"]
    # Visits: root -> B (6) -> B1 (3, over the answer's 2) -> "so 6" (1 visit each, higher Q).
    assert [c.sequence.text for c in by_visits.candidates] == texts
    assert by_visits.candidates[0].answer == "6"
    # Value: the finished solution with the best mean value, "the answer is 5" (.8).
    assert [c.sequence.text for c in by_value.candidates] == [texts[2], texts[0], texts[1]]
    assert by_value.candidates[0].answer == "5"
    assert [c.score for c in by_value.candidates] == pytest.approx([0.8, 0.7, 0.1])
    assert by_value.ranking == [0, 1, 2]


async def test_ties_go_to_the_lower_node_id() -> None:
    engine = scripted(STEPS, {**JUDGE, "B": 0.6})
    strategy, ctx = setup(engine, simulations=2)
    result = await strategy.run(ctx)
    assert result.details["selected"] == [0, 1]
    # No finished solution yet: the leaves are the candidates, most visited path first.
    assert [c.sequence.text for c in result.candidates] == ["A\n\nA2\n\n", "A\n\nA1\n\n", "B\n\n"]


async def test_an_exhausted_tree_stops_early() -> None:
    engine = scripted({"": ["5", "the answer is 6"]}, {"5": 0.3, "the answer is 6": 0.9})
    strategy, ctx = setup(engine, simulations=8)
    result = await strategy.run(ctx)
    assert result.details["simulations"] == 1
    assert len(engine.calls) == 2  # one expansion, one valuation
    assert [c.answer for c in result.candidates] == ["6", "5"]


# Rollouts with self_judge, an outcome verifier that judges whole answers. Sampled expansions
# (n=k) and greedy rollout steps (n=1) are scripted apart:
#   sim 1: root -> 1 "A", 2 "B"; rollouts A -> 3 "A1" -> 5 "so 5" (.9), B -> 4 "the answer is 7"
#   sim 2: A -> 6 "A3", 7 "so 4" (.4); rollout 6 -> 8 "so 8" (.9)
SAMPLED = {"": ["A\n\n", "B\n\n"], "A\n\n": ["A3\n\n", "so 4"]}
GREEDY = {
    "A\n\n": "A1\n\n",
    "B\n\n": "the answer is 7",
    "A\n\nA1\n\n": "so 5",
    "A\n\nA3\n\n": "so 8",
}
ROLLOUT_JUDGE = {
    "A\n\nA1\n\nso 5": 0.9,
    "B\n\nthe answer is 7": 0.2,
    "A\n\nso 4": 0.4,
    "A\n\nA3\n\nso 8": 0.9,
}


def rollout_engine() -> ScriptedEngine:
    def responder(prompt: str, n: int) -> list[str]:
        solution = prompt.split("<assistant>", 1)[1]
        return [GREEDY[solution]] if n == 1 else SAMPLED[solution][:n]

    return ScriptedEngine(responder=responder, judge=lambda text: ROLLOUT_JUDGE[text])


@pytest.mark.parametrize(
    ("final", "expected"),
    # Visits: root -> A (3) -> A3 (1, Q .9 over .4) -> its rollout's "so 8"; then A's other
    # branches, its own rollout last; B's last. Value: .9 (5, lower id), .9 (8), .4 (7), .2 (4).
    [("visits", ["8", "7", "5", "4"]), ("value", ["5", "8", "7", "4"])],
)
async def test_rollout_values(final: str, expected: list[str]) -> None:
    engine = rollout_engine()
    strategy, ctx = setup(
        engine, simulations=2, value="rollout", verifier="self_judge", final=final
    )
    result = await strategy.run(ctx)
    tree = nodes(result)
    # Rollouts continue each child from its own tokens, greedily, one call per rollout step for
    # all children still rolling; the search's own expansions sample.
    prompt = ctx.prompt_token_ids
    calls = [
        (c.n, c.options.temperature, [engine.decode(p[len(prompt) :]) for p in c.prompts])
        for c in generation_calls(engine)
    ]
    assert calls == [
        (2, 0.8, [""]),
        (1, 0.0, ["A\n\n", "B\n\n"]),
        (1, 0.0, ["A\n\nA1\n\n"]),
        (2, 0.8, ["A\n\n"]),
        (1, 0.0, ["A\n\nA3\n\n"]),
    ]
    # One verifier call per simulation, on the rolled-out answers.
    judged = [
        [t.split("Proposed answer:\n")[1].split("\n\nIs")[0] for t in c.prompt_texts()]
        for c in judge_calls(engine)
    ]
    assert judged == [["A\n\nA1\n\nso 5", "B\n\nthe answer is 7"], ["A\n\nA3\n\nso 8", "A\n\nso 4"]]
    assert {i for i, n in tree.items() if n.get("rollout")} == {3, 4, 5, 8}
    # Simulation 2 expanded A (the rollout node 3 under it is not a candidate for selection).
    assert result.details["selected"] == [0, 1]
    assert tree[1]["visits"] == 3 and tree[1]["value"] == pytest.approx(2.2)
    assert (tree[2]["visits"], tree[2]["value"]) == (1, pytest.approx(0.2))
    assert (tree[6]["visits"], tree[6]["value"]) == (1, pytest.approx(0.9))
    assert tree[0]["visits"] == 4 and tree[0]["value"] == pytest.approx(2.4)
    texts = {
        "4": "B\n\nthe answer is 7",
        "5": "A\n\nA1\n\nso 5",
        "7": "A\n\nso 4",
        "8": "A\n\nA3\n\nso 8",
    }
    assert [c.sequence.text for c in result.candidates] == [texts[i] for i in expected]
    assert ctx.usage.completion_tokens == sum(n["tokens"] for n in tree.values())


async def test_token_budget_stops_mid_search_within_budget() -> None:
    # Every partial solution continues with "xyz\n\n" (5 tokens); every step is judged .5.
    engine = ScriptedEngine(responder=lambda prompt, n: ["xyz\n\n"] * n, judge=lambda text: 0.5)
    strategy, ctx = setup(engine, BudgetParams(max_tokens=23), simulations=8, step_tokens=5)
    result = await strategy.run(ctx)
    assert ctx.budget.exhausted == "tokens"
    # 23 tokens: two full expansions (2 x 5 each), then one child cut to the 3 tokens left (a
    # finished, truncated solution); the next expansion gets nothing (no engine call) and the
    # search stops there.
    calls = generation_calls(engine)
    assert [(c.n, c.options.max_tokens) for c in calls] == [(2, 5), (2, 5), (1, 3)]
    assert ctx.usage.completion_tokens == 23
    assert ctx.usage.completion_tokens == sum(n["tokens"] for n in result.details["tree"])
    # Simulation 4 counted the truncated solution (5) again at no cost; simulation 5 selected
    # node 3 (a tie between equal nodes, lower id) and its expansion got nothing: not counted.
    assert result.details["selected"] == [0, 1, 2, 5, 3]
    assert result.details["simulations"] == 4
    assert [c.sequence.text for c in result.candidates] == ["xyz\n\nxyz"]
    assert result.candidates[0].sequence.finish_reason == "length"


async def test_verifier_budget_stops_the_search() -> None:
    engine = scripted(STEPS, JUDGE)
    strategy, ctx = setup(engine, BudgetParams(max_verifier_calls=3), simulations=8)
    result = await strategy.run(ctx)
    assert ctx.budget.exhausted == "verifier_calls"
    assert result.details["simulations"] == 2
    tree = nodes(result)
    # A2 went unscored: it carries no visit, and nothing was expanded after it.
    assert (tree[3]["visits"], tree[4]["visits"], tree[4]["score"]) == (1, 0, None)
    assert len(generation_calls(engine)) == 2


async def test_a_spent_verifier_budget_spends_no_more_tokens() -> None:
    engine = scripted(STEPS, JUDGE)
    strategy, ctx = setup(engine, BudgetParams(max_verifier_calls=4), simulations=8)
    result = await strategy.run(ctx)
    # Two valuations of two children spent it exactly; a third expansion could not be valued.
    assert ctx.budget.exhausted == "verifier_calls"
    assert result.details["simulations"] == 2
    assert len(generation_calls(engine)) == 2
    assert ctx.usage.completion_tokens == 14


async def test_cancelling_the_request_aborts_its_engine_requests() -> None:
    engine = scripted(STEPS, JUDGE)
    engine.delay = 5.0
    strategy, ctx = setup(engine)
    task = asyncio.create_task(strategy.run(ctx))
    await asyncio.sleep(0.05)
    assert engine.running_requests() == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert engine.running_requests() == 0
    assert engine.aborted == ["req-g0-0"]


def test_planned_tokens_is_the_worst_case() -> None:
    prm = MCTS(MCTSParams(strategy="mcts", simulations=4, expansions=3, step_tokens=100))
    assert prm.params.candidates() == 12
    # 4 simulations x 3 children x one step of at most min(100, 64) tokens.
    assert prm.planned_tokens(64, 1) == 4 * 3 * 64
    assert prm.planned_tokens(1000, 1) == 4 * 3 * 100
    rollout = MCTS(
        MCTSParams(strategy="mcts", simulations=4, expansions=3, step_tokens=100, value="rollout")
    )
    # Child plus rollout: at most max_steps (8) steps, and never more than max_tokens a path.
    assert rollout.planned_tokens(500, 1) == 4 * 3 * 500
    assert rollout.planned_tokens(5000, 1) == 4 * 3 * 8 * 100
