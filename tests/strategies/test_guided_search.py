"""Step searches guided by the model's own confidence (#17), on scripted trees: what is expanded
follows the steps' log-probs, MCTS's prior moves selection exactly as PUCT says, and reading the
confidence costs no engine or verifier call."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import pytest

from ponder.core.errors import StrategyInputError
from ponder.strategies.budget import Budget, BudgetParams
from ponder.strategies.mcts import MCTS, MCTSParams
from ponder.strategies.prm_beam_search import PrmBeamSearch, PrmBeamSearchParams
from ponder.strategies.search import SearchParams, SearchTree
from ponder.strategies.tree_of_thoughts import TreeOfThoughts, TreeOfThoughtsParams
from ponder.verifiers.confidence import ConfidenceVerifier
from tests.scripted import ScriptedEngine
from tests.strategies.helpers import generation_calls, make_context
from tests.strategies.test_mcts import JUDGE, STEPS


def engine_for(steps: dict[str, list[str]], logprob: dict[str, float], **kw: Any) -> ScriptedEngine:
    """Continuations by partial solution; every token of a step has the step's log-prob."""

    def responder(prompt: str, n: int) -> list[str]:
        return steps[prompt.split("<assistant>", 1)[1]][:n]

    return ScriptedEngine(responder=responder, logprob_of=lambda t: logprob[t.strip()], **kw)


def judge_calls(engine: ScriptedEngine) -> list:
    return [c for c in engine.calls if c not in generation_calls(engine)]


BEAM_STEPS = {
    "": ["s1\n\n", "s2\n\n", "s3\n\n", "s4\n\n"],
    **{f"s{i}\n\n": [f"s{i} so 5", f"s{i} so 6"] for i in range(1, 5)},
}
BEAM_LOGPROB = {"s1": -1.0, "s2": -0.2, "s3": -0.7, "s4": -0.1}
BEAM_LOGPROB |= {f"s{i} so {k}": -0.5 for i in range(1, 5) for k in (5, 6)}


async def test_beam_search_extends_the_most_confident_steps_with_no_extra_call() -> None:
    engine = engine_for(BEAM_STEPS, BEAM_LOGPROB)
    ctx = make_context(engine)
    params = PrmBeamSearchParams(
        strategy="prm_beam_search", n=4, beam_width=2, verifier="confidence", return_trace=True
    )
    result = await PrmBeamSearch(params).run(ctx)
    # Level 1: the step mean probability is exp(log-prob); s4 (.905) and s2 (.819) are kept.
    first = [n for n in result.details["tree"] if n["depth"] == 1]
    assert [n["score"] for n in first] == pytest.approx(
        [math.exp(v) for v in (-1, -0.2, -0.7, -0.1)]
    )
    assert [n["kept"] for n in first] == [False, True, False, True]
    # Two engine calls, the levels, each asking for log-probs itself; the second extends the
    # kept steps best first. Nothing else: no verifier call, no second pass for log-probs.
    assert [c.options.logprobs for c in engine.calls] == [0, 0]
    assert engine.calls[1].prompts == [
        ctx.prompt_token_ids + engine.encode(s) for s in ("s4\n\n", "s2\n\n")
    ]
    assert ctx.usage.engine_calls == 2
    assert ctx.usage.verifier_calls == ctx.usage.verifier_tokens == 0
    assert result.details["confidence"] == "step_mean"


async def test_a_verifier_score_mixed_with_confidence_by_weight() -> None:
    judged = {"s1": 0.9, "s2": 0.2, "s3": 0.5, "s4": 0.1} | {
        k: 0.5 for k in BEAM_LOGPROB if " so " in k
    }
    engine = engine_for(BEAM_STEPS, BEAM_LOGPROB, judge=lambda text: judged[text.strip()])
    ctx = make_context(engine)
    params = PrmBeamSearchParams(
        strategy="prm_beam_search",
        n=4,
        beam_width=2,
        verifier="step_judge",
        aggregation="last",
        confidence_weight=0.25,
        return_trace=True,
    )
    ctx.scoring = params.scoring()
    result = await PrmBeamSearch(params).run(ctx)
    first = [n for n in result.details["tree"] if n["depth"] == 1]
    expected = [
        0.75 * judged[f"s{i}"] + 0.25 * math.exp(BEAM_LOGPROB[f"s{i}"]) for i in range(1, 5)
    ]
    assert [n["score"] for n in first] == pytest.approx(expected)
    # .75 * .9 + .25 * .37 = .77 and .75 * .5 + .25 * .50 = .50 beat s2 (.35) and s4 (.30).
    assert [n["kept"] for n in first] == [True, False, True, False]
    # The log-probs came with the step generations; the judge's calls are its own.
    assert [c.options.logprobs for c in generation_calls(engine)] == [0, 0]


async def test_tree_of_thoughts_visits_children_in_order_of_confidence() -> None:
    steps = {"": ["x\n\n", "y\n\n", "z\n\n"], "y\n\n": ["y so 5", "y so 6", "y so 7"]}
    logprob = {"x": -0.3, "y": -0.05, "z": -1.5, "y so 5": -0.4, "y so 6": -0.2, "y so 7": -2.0}
    engine = engine_for(steps, logprob)
    ctx = make_context(engine)
    params = TreeOfThoughtsParams(
        strategy="tree_of_thoughts",
        method="dfs",
        proposals=3,
        verifier="confidence",
        return_trace=True,
    )
    result = await TreeOfThoughts(params).run(ctx)
    tree = {n["id"]: n for n in result.details["tree"]}
    # y (.95), x (.74), z (.22); y is followed first, and under it "so 6" (.82) is found, so
    # x and z are never visited.
    assert tree[0]["visit_order"] == [2, 1, 3]
    assert "visit" in tree[2] and "visit" not in tree[1] and "visit" not in tree[3]
    assert tree[2]["visit_order"] == [5, 4, 6]
    assert result.candidates[result.ranking[0]].sequence.text == "y\n\ny so 6"
    assert len(engine.calls) == 2 and ctx.usage.verifier_calls == 0


def mcts_run(
    weight: float, verifier: str = "step_judge", simulations: int = 2
) -> tuple[Any, Any, ScriptedEngine]:
    logprob = {
        "A": -2.0,
        "B": -0.05,
        "A1": -0.1,
        "A2": -0.1,
        "B1": -0.1,
        "the answer is 5": -0.1,
        "so 6": -0.1,
        "so 7": -0.1,
    }
    engine = engine_for(STEPS, logprob, judge=lambda text: JUDGE[text])
    params = MCTSParams(
        strategy="mcts",
        expansions=2,
        simulations=simulations,
        aggregation="last",
        verifier=verifier,
        confidence_weight=weight,
        return_trace=True,
    )
    ctx = make_context(engine)
    ctx.scoring = params.scoring()
    return MCTS(params), ctx, engine


def puct(q: float, prior: float, parent_visits: int, visits: int, c: float = 1.0) -> float:
    return q + c * prior * math.sqrt(parent_visits) / (1 + visits)


@pytest.mark.parametrize(("weight", "chosen"), [(0.0, 1), (0.5, 2), (1.0, 2)])
async def test_mcts_prior_from_confidence_moves_selection_as_puct_says(
    weight: float, chosen: int
) -> None:
    strategy, ctx, engine = mcts_run(weight)
    result = await strategy.run(ctx)
    # Simulation 1 expands the root into A (judged .6) and B (.4); simulation 2 selects by
    # Q + c * P * sqrt(N) / (1 + n), N = 2, n = 1, P = (1 - w) / 2 + w * conf / sum(conf).
    confidence = {"A": math.exp(-2.0), "B": math.exp(-0.05)}
    total = sum(confidence.values())
    prior = {k: (1 - weight) / 2 + weight * v / total for k, v in confidence.items()}
    scores = {1: puct(0.6, prior["A"], 2, 1), 2: puct(0.4, prior["B"], 2, 1)}
    assert max(scores, key=scores.__getitem__) == chosen
    assert result.details["selected"] == [0, chosen]
    # The uniform prior picks the better-judged A; a confident enough prior picks B.
    tree = {n["id"]: n for n in result.details["tree"]}
    if weight:
        assert tree[1]["confidence"] == pytest.approx(confidence["A"])
    # Two expansions, two engine calls with log-probs; the judge judged each new step once.
    assert [c.options.logprobs for c in generation_calls(engine)] == (
        [0, 0] if weight else [None, None]
    )
    assert [len(c.prompts) for c in judge_calls(engine)] == [2, 2]


async def test_mcts_valued_by_confidence_alone_calls_no_verifier() -> None:
    strategy, ctx, engine = mcts_run(0.0, verifier="confidence", simulations=3)
    result = await strategy.run(ctx)
    tree = {n["id"]: n for n in result.details["tree"]}
    # Q is the confidence: B (.95) over A (.14) at equal visits and uniform prior.
    assert tree[2]["score"] == pytest.approx(math.exp(-0.05))
    assert result.details["selected"][:2] == [0, 2]
    assert judge_calls(engine) == [] and ctx.usage.verifier_calls == 0
    assert len(engine.calls) == ctx.usage.engine_calls == 3


async def test_confidence_needs_no_verifier_budget() -> None:
    strategy, ctx, engine = mcts_run(0.0, verifier="confidence", simulations=2)
    ctx.budget = Budget(BudgetParams(max_verifier_calls=0))
    result = await strategy.run(ctx)
    assert result.details["simulations"] == 2 and len(engine.calls) == 2


async def test_the_three_measures() -> None:
    steps = {"": ["ab\n\n"], "ab\n\n": ["cdefgh"]}
    engine = engine_for(steps, {"ab": -1.0, "cdefgh": -0.1})
    ctx = make_context(engine)
    values = {}
    for measure in ("step_mean", "path_mean", "step_lowest_group"):
        params = SearchParams(verifier="confidence", confidence=measure, confidence_top_logprobs=2)
        tree = SearchTree(ctx, params)
        (first,) = await tree.expand([tree.root], 1)
        (second,) = await tree.expand(first, 1)
        values[measure] = tree.confidence(second[0])
    # "ab\n\n" is 4 tokens at -1, "cdefgh" 6 at -.1: the path's mean log-prob is -.46.
    assert values["step_mean"] == pytest.approx(math.exp(-0.1))
    assert values["path_mean"] == pytest.approx(math.exp((4 * -1.0 + 6 * -0.1) / 10))
    # Without alternatives, a token's bounded confidence is its probability.
    assert values["step_lowest_group"] == pytest.approx(math.exp(-0.1))


async def test_other_log_prob_verifiers_are_still_refused() -> None:
    class WholeAnswer(ConfidenceVerifier):
        family: ClassVar[str] = "whole_answer"

    ctx = make_context(ScriptedEngine())
    ctx.verifiers = {**ctx.verifiers, "whole": WholeAnswer("whole")}
    with pytest.raises(StrategyInputError) as raised:
        SearchTree(ctx, SearchParams(verifier="whole"))
    assert raised.value.param == "tts.verifier"
