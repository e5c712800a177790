"""PRM beam search on the scripted engine: every keep/prune decision, call shape and token."""

import asyncio

import pytest
from pydantic import ValidationError

from ponder.server.errors import validation_error
from ponder.strategies.base import StrategyResult
from ponder.strategies.budget import BudgetParams
from ponder.strategies.context import StrategyContext
from ponder.strategies.prm_beam_search import PrmBeamSearch, PrmBeamSearchParams
from tests.scripted import ScriptedEngine
from tests.strategies.helpers import generation_calls, make_context

# Continuations by the solution so far; a step without a blank line ends the solution (EOS).
TREE = {
    "": ["a\n\n", "b\n\n", "c\n\n", "d\n\n"],
    "a\n\n": ["a1\n\n", "The answer is 5"],
    "c\n\n": ["c1\n\n", "c2\n\n"],
    "c\n\nc1\n\n": ["The answer is 6", "e\n\n"],
    "c\n\nc2\n\n": ["The answer is 7", "f\n\n"],
}
# P(yes) per step. With aggregation "last" a node scores its own (newest) step.
STEP_SCORES = {
    "a": 0.9,
    "b": 0.3,
    "c": 0.8,
    "d": 0.5,
    "a1": 0.4,
    "The answer is 5": 0.65,
    "c1": 0.7,
    "c2": 0.6,
    "The answer is 6": 0.95,
    "e": 0.2,
    "The answer is 7": 0.1,
    "f": 0.3,
}


def scripted(tree: dict[str, list[str]], scores: dict[str, float]) -> ScriptedEngine:
    def responder(prompt: str, n: int) -> list[str]:
        continuations = tree[prompt.split("<assistant>", 1)[1]]
        assert len(continuations) >= n, f"script has {len(continuations)} continuations, not {n}"
        return continuations[:n]

    return ScriptedEngine(responder=responder, judge=lambda step: scores[step])


class ServedPrmBeamSearch(PrmBeamSearch):
    """Runs as the server runs it: with the request's scoring options (aggregation) on ctx."""

    async def run(self, ctx: StrategyContext) -> StrategyResult:
        ctx.scoring = self.params.scoring()
        return await super().run(ctx)


def search(**params: object) -> PrmBeamSearch:
    return ServedPrmBeamSearch(
        PrmBeamSearchParams(strategy="prm_beam_search", return_trace=True, **params)
    )


def judge_calls(engine: ScriptedEngine) -> list:
    generated = generation_calls(engine)
    return [c for c in engine.calls if c not in generated]


def nodes(result: StrategyResult) -> dict[str, dict]:
    """Trace nodes by their step text (unique in these scripts, rollouts aside)."""
    return {n["step"]: n for n in result.details["tree"] if "lookahead_of" not in n}


def kept(result: StrategyResult) -> dict[str, bool]:
    return {n["step"].strip(): n["kept"] for n in result.details["tree"] if "kept" in n}


def best(result: StrategyResult) -> str:
    return result.candidates[result.ranking[0]].sequence.text


async def test_keeps_the_best_n_over_m_each_level_and_extends_each_m_ways() -> None:
    engine = scripted(TREE, STEP_SCORES)
    ctx = make_context(engine)
    params = {"n": 4, "beam_width": 2, "max_steps": 3, "aggregation": "last"}
    result = await search(**params).run(ctx)
    # Level 1 keeps a and c; level 2 keeps c1 and c2 (a1 loses to both though its parent won);
    # "The answer is 5" is terminal, so it is set aside as finished rather than competing.
    assert kept(result) == {
        "a": True,
        "b": False,
        "c": True,
        "d": False,
        "a1": False,
        "c1": True,
        "c2": True,
    }
    calls = generation_calls(engine)
    assert [(len(c.prompts), c.n) for c in calls] == [(1, 4), (2, 2), (2, 2)]
    by_step = nodes(result)
    prompt = ctx.prompt_token_ids
    assert calls[1].prompt_texts() == [engine.decode(prompt) + t for t in ("a\n\n", "c\n\n")]
    assert calls[2].prompts[0] == prompt + engine.encode("c\n\nc1\n\n")
    # One judge call per level, each judging only that level's new steps.
    assert [len(c.prompts) for c in judge_calls(engine)] == [4, 4, 4]
    assert result.details["levels"] == 3
    assert result.details["verifier"] == "step_judge"
    # Finished: "The answer is 5" at level 2, and the four depth-3 nodes (max_steps).
    assert result.details["finished"] == 5
    texts = [c.sequence.text for c in result.candidates]
    assert texts == [
        "a\n\nThe answer is 5",
        "c\n\nc1\n\nThe answer is 6",
        "c\n\nc1\n\ne\n\n",
        "c\n\nc2\n\nThe answer is 7",
        "c\n\nc2\n\nf\n\n",
    ]
    assert [texts[i] for i in result.ranking] == [texts[i] for i in (1, 0, 4, 2, 3)]
    assert best(result) == "c\n\nc1\n\nThe answer is 6"
    assert result.candidates[result.ranking[0]].step_scores == pytest.approx((0.8, 0.7, 0.95))
    assert by_step["e\n\n"]["terminal"] and by_step["e\n\n"]["depth"] == 3
    assert ctx.usage.completion_tokens == sum(n["tokens"] for n in result.details["tree"])
    assert ctx.budget.exhausted is None


async def test_equal_scores_keep_the_earlier_node() -> None:
    tied = {**STEP_SCORES, "a": 0.5, "b": 0.5, "c": 0.5, "d": 0.5, "b1": 0.5, "b2": 0.5}
    engine = scripted({**TREE, "b\n\n": ["b1\n\n", "b2\n\n"]}, tied)
    result = await search(n=4, beam_width=2, max_steps=2, aggregation="last").run(
        make_context(engine)
    )
    assert kept(result) == {"a": True, "b": True, "c": False, "d": False}


LOOKAHEAD_TREE = {
    "": ["a\n\n", "b\n\n"],
    "a\n\n": ["ra\n\n"],
    "b\n\n": ["rb\n\n", "The answer is 5"],
}
# a looks better than b alone, but its greedy continuation looks bad.
LOOKAHEAD_SCORES = {"a": 0.9, "b": 0.5, "ra": 0.1, "rb": 0.8, "The answer is 5": 0.95}


async def test_lookahead_scores_the_rolled_text_but_keeps_the_child() -> None:
    engine = scripted(LOOKAHEAD_TREE, LOOKAHEAD_SCORES)
    ctx = make_context(engine)
    params = {"n": 2, "beam_width": 2, "max_steps": 2, "lookahead": 1, "aggregation": "last"}
    result = await search(**params).run(ctx)
    calls = generation_calls(engine)
    # Root 2 ways; one greedy rollout step for both children in one call; b extended 2 ways.
    assert [(len(c.prompts), c.n) for c in calls] == [(1, 2), (2, 1), (1, 2)]
    assert [c.options.temperature for c in calls] == [0.8, 0.0, 0.8]
    trace = result.details["tree"]
    by_id = {n["id"]: n for n in trace}
    a, b = (next(n for n in trace if n["step"] == s) for s in ("a\n\n", "b\n\n"))
    assert by_id[a["scored_as"]]["step"] == "ra\n\n"
    assert by_id[a["scored_as"]]["lookahead_of"] == a["id"]
    assert a["score"] == pytest.approx(0.1) and b["score"] == pytest.approx(0.8)
    assert (a["kept"], b["kept"]) == (False, True)
    # The kept node is b itself: its children extend "b", not the rollout.
    assert calls[2].prompt_texts()[0].endswith("<assistant>b\n\n")
    rollouts = [n for n in trace if "lookahead_of" in n]
    assert {n["step"] for n in rollouts} == {"ra\n\n", "rb\n\n"}
    assert not any("kept" in n for n in rollouts)
    # Level 1 judged a, ra, b, rb; level 2 only the new final step (b, rb came from the cache).
    assert [len(c.prompts) for c in judge_calls(engine)] == [4, 1]
    assert [c.sequence.text for c in result.candidates] == ["b\n\nrb\n\n", "b\n\nThe answer is 5"]
    assert best(result) == "b\n\nThe answer is 5"
    assert ctx.usage.completion_tokens == sum(n["tokens"] for n in trace)


DVTS_TREE = {
    "": ["a\n\n", "b\n\n", "c\n\n", "d\n\n"],
    "a\n\n": ["The answer is 1", "The answer is 2"],
    "d\n\n": ["The answer is 3", "The answer is 4"],
}
# Subtree 0 is {a, b}, subtree 1 is {c, d}; c and d both score below b.
DVTS_SCORES = {
    "a": 0.9,
    "b": 0.8,
    "c": 0.2,
    "d": 0.3,
    "The answer is 1": 0.5,
    "The answer is 2": 0.4,
    "The answer is 3": 0.7,
    "The answer is 4": 0.6,
}


async def test_dvts_keeps_each_subtrees_best_even_when_another_subtree_scores_higher() -> None:
    engine = scripted(DVTS_TREE, DVTS_SCORES)
    ctx = make_context(engine)
    params = {"n": 4, "beam_width": 2, "max_steps": 2, "dvts": True, "aggregation": "last"}
    result = await search(**params).run(ctx)
    # Plain beam search would keep a and b; each subtree keeps its own best instead.
    assert kept(result) == {"a": True, "b": False, "c": False, "d": True}
    assert {n["step"].strip(): n["subtree"] for n in result.details["tree"][1:]} == {
        "a": 0,
        "b": 0,
        "c": 1,
        "d": 1,
        "The answer is 1": 0,
        "The answer is 2": 0,
        "The answer is 3": 1,
        "The answer is 4": 1,
    }
    assert [(len(c.prompts), c.n) for c in generation_calls(engine)] == [(1, 4), (2, 2)]
    assert [len(c.prompts) for c in judge_calls(engine)] == [4, 4]
    # The final pick is over all subtrees: the weaker subtree's solution wins.
    assert best(result) == "d\n\nThe answer is 3"
    assert result.details["finished"] == 4

    # Without DVTS the same script keeps a and b.
    engine = scripted({**DVTS_TREE, "b\n\n": ["x\n\n", "y\n\n"]}, {**DVTS_SCORES, "x": 0, "y": 0})
    plain = await search(n=4, beam_width=2, max_steps=2, aggregation="last").run(
        make_context(engine)
    )
    assert kept(plain) == {"a": True, "b": True, "c": False, "d": False}


ANSWERS = {"": ["The answer is 5", "The answer is 6", "It is 6", "The answer is 7"]}
ANSWER_SCORES = {
    "The answer is 5": 0.9,
    "The answer is 6": 0.6,
    "It is 6": 0.5,
    "The answer is 7": 0.1,
}


async def test_weighted_vote_picks_the_answer_with_the_most_total_score() -> None:
    engine = scripted(ANSWERS, ANSWER_SCORES)
    result = await search(n=4, beam_width=2, final="weighted_vote").run(make_context(engine))
    # 6 carries 0.6 + 0.5 = 1.1 against 0.9 for 5; within 6, the better-scored solution first.
    assert best(result) == "The answer is 6"
    assert result.ranking == [1, 2, 0, 3]
    assert result.details["answer_weights"] == pytest.approx({"6": 1.1, "5": 0.9, "7": 0.1})
    engine = scripted(ANSWERS, ANSWER_SCORES)
    by_score = await search(n=4, beam_width=2).run(make_context(engine))
    assert best(by_score) == "The answer is 5"
    assert "answer_weights" not in by_score.details


async def test_token_budget_stops_mid_search_and_returns_the_best_so_far() -> None:
    engine = scripted(TREE, STEP_SCORES)
    # Level 1 may need 4 x 8 tokens and uses 4 x 3; level 2 may need 2 prompts x 2 x 8 = 32 of
    # the 28 left, so it gets one child per parent; then the search stops.
    ctx = make_context(engine, budget=BudgetParams(max_tokens=40))
    result = await search(n=4, beam_width=2, step_tokens=8, aggregation="last").run(ctx)
    assert ctx.budget.exhausted == "tokens"
    assert [(len(c.prompts), c.n) for c in generation_calls(engine)] == [(1, 4), (2, 1)]
    assert ctx.usage.completion_tokens == 12 + len("a1\n\n") + len("c1\n\n") <= 40
    assert result.details["levels"] == 2 and result.details["finished"] == 0
    # Nothing finished: the best unfinished solution is returned, marked as cut short.
    (candidate,) = result.candidates
    assert candidate.sequence.text == "c\n\nc1\n\n"
    assert candidate.sequence.finish_reason == "length"
    assert ctx.usage.completion_tokens == sum(n["tokens"] for n in result.details["tree"])


async def test_a_budget_smaller_than_a_step_cuts_the_first_step_short() -> None:
    engine = scripted(TREE, STEP_SCORES)
    ctx = make_context(engine, budget=BudgetParams(max_tokens=1))
    result = await search(n=4, beam_width=2, step_tokens=8).run(ctx)
    assert ctx.budget.exhausted == "tokens"
    assert [(len(c.prompts), c.n, c.options.max_tokens) for c in generation_calls(engine)] == [
        (1, 1, 1)
    ]
    assert ctx.usage.completion_tokens == 1
    assert (result.details["levels"], result.details["finished"]) == (1, 1)
    assert [c.sequence.text for c in result.candidates] == ["a"]


async def test_cancelling_the_request_aborts_its_engine_requests() -> None:
    engine = scripted(TREE, STEP_SCORES)
    engine.delay = 5.0
    task = asyncio.create_task(search(n=4, beam_width=2).run(make_context(engine)))
    await asyncio.sleep(0.05)
    assert engine.running_requests() == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert engine.running_requests() == 0
    assert engine.aborted == ["req-g0-0"]


def generic_engine() -> ScriptedEngine:
    """Any solution continues; scores are a fixed function of the step text."""

    def responder(prompt: str, n: int) -> list[str]:
        depth = prompt.count("\n\n")
        return [f"s{depth}.{i}\n\n" for i in range(n)]

    return ScriptedEngine(
        responder=responder, judge=lambda step: (sum(map(ord, step)) * 37 % 100) / 100
    )


@pytest.mark.parametrize("dvts", [False, True])
async def test_same_engine_outputs_give_the_same_search(dvts: bool) -> None:
    params = {"n": 4, "beam_width": 2, "max_steps": 4, "lookahead": 2, "dvts": dvts}
    ctx = make_context(generic_engine())
    first = await search(**params).run(ctx)
    again = await search(**params).run(make_context(generic_engine()))
    assert first.details == again.details and first.ranking == again.ranking
    assert first.details["levels"] == 4
    assert ctx.usage.completion_tokens == sum(n["tokens"] for n in first.details["tree"])
    # Each level: n / M prompts extended M ways, then two greedy rollout calls of n prompts
    # (fewer once rollouts reach max_steps).
    assert isinstance(ctx.engine, ScriptedEngine)
    shapes = [(len(c.prompts), c.n) for c in generation_calls(ctx.engine)]
    assert shapes[:4] == [(1, 4), (4, 1), (4, 1), (2, 2)]


async def test_no_trace_unless_asked() -> None:
    engine = scripted(ANSWERS, ANSWER_SCORES)
    params = PrmBeamSearchParams(strategy="prm_beam_search", n=4, beam_width=2)
    result = await PrmBeamSearch(params).run(make_context(engine))
    assert set(result.details) == {"verifier", "levels", "finished"}


def test_n_must_be_a_multiple_of_beam_width() -> None:
    with pytest.raises(ValidationError, match="multiple of beam_width") as raised:
        PrmBeamSearchParams(strategy="prm_beam_search", n=6, beam_width=4)
    # The server's 400 names the field from the error's param.
    assert validation_error(raised.value, prefix="tts").param == "tts.beam_width"
    with pytest.raises(ValidationError):
        PrmBeamSearchParams(strategy="prm_beam_search", final="majority")
    params = PrmBeamSearchParams(strategy="prm_beam_search")
    assert (params.n, params.beam_width, params.verifier, params.candidates()) == (
        8,
        4,
        "step_judge",
        8,
    )


def test_planned_tokens_bound_every_level_and_rollout() -> None:
    plain = search(n=4, beam_width=2, max_steps=8, step_tokens=100)
    assert plain.planned_tokens(max_tokens=1000, choices=1) == 4 * 8 * 100
    # Short answers: pruned siblings still cost, so the bound exceeds n * max_tokens.
    assert plain.planned_tokens(max_tokens=50, choices=1) == 4 * 8 * 50
    rolled = search(n=4, beam_width=2, max_steps=8, step_tokens=100, lookahead=2)
    assert rolled.planned_tokens(max_tokens=1000, choices=1) == 4 * 8 * (100 + 200)
    assert rolled.planned_tokens(max_tokens=150, choices=1) == 4 * 8 * (100 + 150)
    assert search(n=2, beam_width=1, max_steps=64).planned_tokens(3, 2) == 2 * 3 * 3
