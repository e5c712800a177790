"""The shared search core: expansion from token ids in one call, scoring in one call."""

from typing import Any

from ponder.strategies.search import SearchParams, SearchTree
from tests.scripted import ScriptedEngine
from tests.strategies.helpers import generation_calls, make_context

STEPS = {
    "": ["add 2 and 3\n\n", "the answer is 6"],
    "add 2 and 3\n\n": ["so 5\n\n", "so 6\n\n"],
}


def responder(prompt: str, n: int) -> list[str]:
    solution = prompt.split("<assistant>", 1)[1]
    return STEPS[solution][:n]


def tree(max_steps: int = 8, **ctx: Any) -> tuple[SearchTree, ScriptedEngine]:
    engine = ScriptedEngine(responder=responder, judge=lambda step: 0.25 if "6" in step else 0.75)
    params = SearchParams(strategy="beam", verifier="step_judge", max_steps=max_steps)
    return SearchTree(make_context(engine, **ctx), params), engine


async def test_expansion_continues_from_token_ids_in_one_call() -> None:
    search, engine = tree()
    (children,) = await search.expand([search.root], 2)
    assert [c.step_text for c in children] == ["add 2 and 3\n\n", "the answer is 6"]
    assert [c.terminal for c in children] == [False, True]
    assert children[1].finish_reason == "stop"
    (call,) = engine.calls
    assert call.n == 2 and call.options.stop[0] == "\n\n" and call.options.include_stop
    grandchildren = await search.expand(children, 2)
    # The terminal child is not expanded; the other continues from its own tokens.
    assert [len(g) for g in grandchildren] == [2, 0]
    second = generation_calls(engine)[1]
    assert len(second.prompts) == 1
    assert second.prompts[0] == search.ctx.prompt_token_ids + list(children[0].token_ids)
    assert grandchildren[0][0].text == "add 2 and 3\n\nso 5\n\n"
    assert search.generated_tokens() == search.ctx.usage.completion_tokens


async def test_scoring_a_level_is_one_verifier_call_and_reuses_known_steps() -> None:
    search, engine = tree()
    (children,) = await search.expand([search.root], 2)
    await search.evaluate(children)
    (grandchildren,) = await search.expand(children[:1], 2)
    await search.evaluate(grandchildren)
    judge_calls = [c for c in engine.calls if c not in generation_calls(engine)]
    # Level 1 judged two steps; level 2 judged only the two new steps (the parent's is cached).
    assert [len(c.prompts) for c in judge_calls] == [2, 2]
    assert [n.score for n in grandchildren] == [0.75, 0.25]
    assert grandchildren[1].step_scores == (0.75, 0.25)
    assert search.ctx.usage.verifier_cache_hits == 2


async def test_depth_and_length_limits_make_nodes_terminal() -> None:
    search, _ = tree(max_steps=1)
    (children,) = await search.expand([search.root], 1)
    assert children[0].terminal and children[0].depth == 1
    search, _ = tree(max_tokens=5)
    (children,) = await search.expand([search.root], 1)
    assert children[0].terminal and children[0].finish_reason == "length"
    assert children[0].step_tokens == 5


async def test_rollout_continues_greedily_one_call_per_step_and_marks_its_steps() -> None:
    search, engine = tree()
    (children,) = await search.expand([search.root], 2)
    live, finished = children
    tips = await search.rollout(children, steps=1)
    # Only the live child rolls, greedily; the finished one is its own tip.
    (call,) = generation_calls(engine)[1:]
    assert call.n == 1 and call.options.temperature == 0.0 and len(call.prompts) == 1
    assert tips[1] is finished and finished.rollout_tip is None
    assert tips[0].text == "add 2 and 3\n\nso 5\n\n"
    assert tips[0].rollout_of is live and live.rollout_tip is tips[0]
    assert tips[0] in live.children


def test_step_bounds_cap_steps_and_paths_by_max_tokens() -> None:
    params = SearchParams(strategy="beam", max_steps=8, step_tokens=100)
    bounds = params.bounds(500)
    assert (bounds.step, bounds.levels) == (100, 8)
    assert bounds.steps(3) == 300 and bounds.steps(8) == 500
    assert params.bounds(5).step == 5 and params.bounds(5).levels == 5
