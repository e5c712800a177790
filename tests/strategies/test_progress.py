"""Progress and early answers: every search reports each step it takes; a decided vote is
announced before the run ends; nothing is reported where nobody listens."""

from __future__ import annotations

from typing import Any

import pytest

from ponder.strategies.base import Strategy, StrategyResult
from ponder.strategies.budget import BudgetParams
from ponder.strategies.compute_optimal import ComputeOptimal, ComputeOptimalParams
from ponder.strategies.context import StrategyContext
from ponder.strategies.progress import EarlyAnswer, SearchProgress
from ponder.strategies.registry import strategy_class
from ponder.strategies.self_consistency import SelfConsistency, SelfConsistencyParams
from tests.scripted import ScriptedEngine
from tests.strategies.helpers import make_context
from tests.strategies.test_compute_optimal import table


def steps_engine() -> ScriptedEngine:
    """Two reasoning steps, then a final answer; every judge says 0.6 (or 0.7 for "5")."""

    def responder(prompt: str, n: int) -> list[str]:
        depth = prompt.count("Step ")
        if depth >= 2:
            return [f"So the answer is \\boxed{{{5 + i % 2}}}." for i in range(n)]
        return [f"Step {depth + 1}.{i}\n\n" for i in range(n)]

    return ScriptedEngine(responder=responder, judge=lambda text: 0.7 if "{5}" in text else 0.6)


def record(ctx: StrategyContext) -> list[SearchProgress]:
    reports: list[SearchProgress] = []
    ctx.on_progress = reports.append
    return reports


async def run(name: str, tts: dict[str, Any], **context: Any) -> tuple[Any, list, Any]:
    strategy: Strategy = strategy_class(name)(strategy_class(name).Params(strategy=name, **tts))
    ctx = make_context(steps_engine(), **context)
    reports = record(ctx)
    result = await strategy.run(ctx)
    return result, reports, ctx


# (strategy, tts, the result's count of steps, the phases reported)
SEARCHES = [
    ("best_of_n", {"n": 3}, lambda r: 2, ["sample", "score"]),
    ("prm_beam_search", {"n": 4, "beam_width": 2}, lambda r: r.details["levels"], ["level"]),
    ("mcts", {"simulations": 4, "expansions": 2}, lambda r: r.details["simulations"], None),
    ("tree_of_thoughts", {"breadth": 2, "proposals": 2}, lambda r: r.details["levels"], None),
    (
        "tree_of_thoughts",
        {"method": "dfs", "proposals": 2, "threshold": 0.0},
        lambda r: r.details["expansions"],
        ["expansion"],
    ),
    ("graph_of_thoughts", {"n": 2, "rounds": 2}, lambda r: r.details["rounds"] + 1, None),
    ("self_refine", {"max_rounds": 2}, lambda r: max(r.details["rounds"]) + 1, None),
    (
        "self_consistency",
        {"n": 4, "adaptive": True, "min_samples": 4},
        lambda r: len(r.candidates) - r.details["stopped"],
        ["sample"],
    ),
]


@pytest.mark.parametrize(("name", "tts", "steps", "phases"), SEARCHES)
async def test_every_search_reports_each_step(
    name: str, tts: dict[str, Any], steps: Any, phases: list[str] | None
) -> None:
    result, reports, ctx = await run(name, tts, max_tokens=200)
    expected = steps(result) if steps else result.details["rounds"]
    assert expected >= 2, "the scripted search takes several steps"
    assert [r.step for r in reports] == list(range(1, expected + 1))
    assert {r.strategy for r in reports} == {name}
    if phases is not None:
        assert [r.phase for r in reports][: len(phases)] == phases
    tokens = [r.completion_tokens for r in reports]
    assert tokens == sorted(tokens) and tokens[-1] <= ctx.usage.completion_tokens
    # Chains that stopped are no longer alive: self_refine may end with none.
    assert reports[0].candidates_alive >= 1 and all(r.candidates_alive >= 0 for r in reports)
    assert all(r.token_budget is None for r in reports)
    assert reports[-1].best_score is not None and reports[-1].max_steps is not None


async def test_token_beam_search_reports_every_token() -> None:
    engine = ScriptedEngine(next_tokens=lambda ids: [(ord("a"), -0.1), (ord("b"), -0.2)])
    ctx = make_context(engine, max_tokens=3, budget=BudgetParams(max_tokens=100))
    reports = record(ctx)
    tts = {"strategy": "beam_search", "beam_width": 2}
    result = await strategy_class("beam_search")(strategy_class("beam_search").Params(**tts)).run(
        ctx
    )
    assert [r.step for r in reports] == [1, 2, 3] == list(range(1, result.details["steps"] + 1))
    assert [r.max_steps for r in reports] == [3, 3, 3]
    assert all(r.token_budget == 100 for r in reports)
    assert [r.completion_tokens for r in reports] == [1, 3, 5]


async def test_compute_optimal_reports_its_probe_then_the_chosen_option() -> None:
    engine = ScriptedEngine(texts=["5", "6", "5", "7", "66", "66"])
    ctx = make_context(engine)
    reports = record(ctx)
    params = ComputeOptimalParams(strategy="compute_optimal")
    result = await ComputeOptimal(params, table()).run(ctx)
    assert result.details["chosen_strategy"] == "self_consistency"
    assert [(r.strategy, r.phase) for r in reports] == [
        ("compute_optimal", "probe"),
        ("self_consistency", "round"),
    ]
    assert [r.completion_tokens for r in reports] == [4, 8]


async def test_nothing_is_reported_or_announced_without_a_listener() -> None:
    # A request that is not streamed has no observers: the calls are no-ops, nothing breaks.
    result, _, ctx = await run("prm_beam_search", {"n": 4, "beam_width": 2})
    ctx.on_progress = None
    ctx.report_progress("x", "level", 1, 1, 1, None)
    ctx.announce(0, result.candidates[0].sequence)
    assert not ctx.streamed


def streamed_vote(texts: list[str], n: int) -> tuple[SelfConsistency, StrategyContext, list]:
    engine = ScriptedEngine(texts=texts)
    ctx = make_context(engine)
    events: list[Any] = []
    ctx.on_progress = events.append
    ctx.on_answer = events.append
    return SelfConsistency(SelfConsistencyParams(strategy="self_consistency", n=n)), ctx, events


async def test_a_streamed_vote_is_announced_once_the_rest_cannot_change_it() -> None:
    strategy, ctx, events = streamed_vote(["5", "5", "6", "5", "5", "7"], 6)
    result = await strategy.run(ctx)
    # After 5 samples "5" has 4 votes, "6" one, and one sample is left: 4 > 1 + 1. It is
    # announced as the 5th sample is counted, before that sample's progress report.
    kinds = [type(e).__name__ for e in events]
    assert kinds.index("EarlyAnswer") == 4 and kinds.count("EarlyAnswer") == 1
    answer = next(e for e in events if isinstance(e, EarlyAnswer))
    assert answer.choice == 0 and answer.sequence.text == "5"
    # The rest finished: the same samples, votes and usage as unstreamed, and the announced
    # sample is the one the vote returns.
    chosen = result.candidates[result.ranking[0]]
    assert chosen.sequence is answer.sequence
    assert result.details["votes"] == {"5": 4.0, "6": 1.0, "7": 1.0}
    assert result.details["decided"] is True
    assert len(result.candidates) == 6 and ctx.usage.completion_tokens == 6
    assert ctx.usage.engine_calls == 1
    progress = [e for e in events if isinstance(e, SearchProgress)]
    assert [p.step for p in progress] == [1, 2, 3, 4, 5, 6]
    assert [p.completion_tokens for p in progress] == [1, 2, 3, 4, 5, 6]


async def test_an_undecided_streamed_vote_is_not_announced() -> None:
    strategy, ctx, events = streamed_vote(["5", "6", "5", "6"], 4)
    result = await strategy.run(ctx)
    assert not any(isinstance(e, EarlyAnswer) for e in events)
    assert result.details["decided"] is False
    assert result.candidates[result.ranking[0]].sequence.text == "5"


async def test_a_streamed_vote_with_a_deadline_samples_in_one_batch() -> None:
    # The engine's streams take no deadline: such a request keeps the batched path.
    engine = ScriptedEngine(texts=["5", "5", "5"])
    ctx = make_context(engine, budget=BudgetParams(deadline_s=60))
    events: list[Any] = []
    ctx.on_answer = events.append
    params = SelfConsistencyParams(strategy="self_consistency", n=3)
    result: StrategyResult = await SelfConsistency(params).run(ctx)
    assert events == [] and "decided" not in result.details
    assert [c.n for c in engine.calls] == [3]


async def test_a_streamed_vote_is_held_to_the_token_budget() -> None:
    strategy, ctx, _ = streamed_vote(["12345678901234", "5"], 4)
    ctx.budget = make_context(ScriptedEngine(), budget=BudgetParams(max_tokens=10)).budget
    result = await strategy.run(ctx)
    # 10 tokens cannot pay for 4 samples of 64: one sample of at most 10 tokens is drawn.
    call = ctx.engine.calls[0]  # type: ignore[attr-defined]
    assert call.n == 1 and call.options.max_tokens == 10
    assert len(result.candidates) == 1 and result.candidates[0].sequence.num_tokens == 10
    assert ctx.usage.completion_tokens == ctx.budget.tokens_used == 10
    assert ctx.budget.exhausted == "tokens"
