"""Tree of Thoughts on scripted trees: which thoughts are kept, pruned or visited, at what cost."""

import asyncio

import pytest

from ponder.core.errors import StrategyInputError
from ponder.core.prompting import render_within_context
from ponder.strategies.budget import BudgetParams
from ponder.strategies.tree_of_thoughts import (
    TreeOfThoughts,
    TreeOfThoughtsParams,
)
from ponder.strategies.values import parse_vote
from ponder.verifiers.base import Question
from tests.scripted import ScriptedEngine
from tests.strategies.helpers import QUESTION, generation_calls, make_context

# Partial solution -> its proposed next thoughts.
BFS_TREE = {
    "": ["a1\n\n", "a2\n\n", "a3\n\n"],
    "a1\n\n": ["b1\n\n", "b2\n\n", "The answer is 5"],
    "a3\n\n": ["c1\n\n", "c2\n\n", "c3\n\n"],
    "a1\n\nb1\n\n": ["d1\n\n", "The answer is 6", "d3\n\n"],
    "a3\n\nc1\n\n": ["e1\n\n", "e2\n\n", "e3\n\n"],
}
# Step -> P(Yes) from the step judge; a node's value is the minimum over its path.
STEP_VALUES = {
    "a1": 0.9,
    "a2": 0.3,
    "a3": 0.6,
    "b1": 0.8,
    "b2": 0.4,
    "The answer is 5": 0.95,
    "c1": 0.7,
    "c2": 0.2,
    "c3": 0.8,
    "d1": 0.5,
    "The answer is 6": 0.1,
    "d3": 0.7,
    "e1": 0.1,
    "e2": 0.2,
    "e3": 0.3,
}


def scripted(
    tree: dict[str, list[str]], votes: dict[str, list[str]] | None = None
) -> ScriptedEngine:
    def responder(prompt: str, n: int) -> list[str]:
        if "Which choice is the most promising" in prompt:
            assert votes is not None
            (key,) = [k for k in votes if k in prompt]
            assert len(votes[key]) == n
            return votes[key]
        return tree[prompt.split("<assistant>", 1)[1]][:n]

    return ScriptedEngine(responder=responder, judge=lambda step: STEP_VALUES[step])


def tot(**params: object) -> TreeOfThoughts:
    return TreeOfThoughts(
        TreeOfThoughtsParams(strategy="tree_of_thoughts", return_trace=True, **params)
    )


def judge_calls(engine: ScriptedEngine) -> list:
    return [c for c in engine.calls if c not in generation_calls(engine)]


def by_text(result) -> dict[str, dict]:
    return {"".join(n["step"] for n in path(result, n["id"])): n for n in result.details["tree"]}


def path(result, node_id: int) -> list[dict]:
    nodes = {n["id"]: n for n in result.details["tree"]}
    chain = []
    while node_id is not None:
        chain.append(nodes[node_id])
        node_id = nodes[node_id]["parent"]
    return chain[::-1]


async def test_bfs_keeps_the_best_per_level_one_engine_and_one_verifier_call_each() -> None:
    engine = scripted(BFS_TREE)
    ctx = make_context(engine)
    strategy = tot(breadth=2, proposals=3, max_steps=3)
    result = await strategy.run(ctx)
    nodes = by_text(result)
    # Level 1: a1 (0.9) and a3 (0.6) kept, a2 (0.3) pruned.
    assert nodes["a1\n\n"]["kept"] and nodes["a3\n\n"]["kept"]
    assert nodes["a2\n\n"]["pruned"] and "kept" not in nodes["a2\n\n"]
    # Level 2: b1 (0.8) kept; c1 and c3 tie at 0.6 and the first proposed (c1) is kept.
    level2 = {k: v for k, v in nodes.items() if v["depth"] == 2}
    kept = sorted(k for k, v in level2.items() if v.get("kept"))
    assert kept == ["a1\n\nb1\n\n", "a3\n\nc1\n\n"]
    assert nodes["a3\n\nc1\n\n"]["score"] == nodes["a3\n\nc3\n\n"]["score"] == 0.6
    assert all(v.get("pruned") for k, v in level2.items() if k.endswith(("b2\n\n", "c2\n\n")))
    assert nodes["a3\n\nc3\n\n"]["pruned"]
    # The finished solution is set aside, neither kept nor pruned.
    finished = nodes["a1\n\nThe answer is 5"]
    assert finished["finished"] and finished["terminal"] and "kept" not in finished
    # Only kept nodes were expanded, level by level, each level in one engine call.
    calls = generation_calls(engine)
    solutions = [[t.split("<assistant>", 1)[1] for t in c.prompt_texts()] for c in calls]
    assert solutions == [[""], ["a1\n\n", "a3\n\n"], ["a1\n\nb1\n\n", "a3\n\nc1\n\n"]]
    assert [c.n for c in calls] == [3, 3, 3]
    # One verifier call per level; each judges only the new steps (prefixes are cached).
    assert [len(c.prompts) for c in judge_calls(engine)] == [3, 6, 6]
    assert result.details["levels"] == 3
    # Depth 3 is max_steps: everything there is finished. The best solution wins.
    best = result.candidates[result.ranking[0]]
    assert best.sequence.text == "a1\n\nThe answer is 5" and best.score == 0.9
    assert len(result.candidates) == 7
    scores = [result.candidates[i].score for i in result.ranking]
    assert None not in scores
    assert scores == sorted(scores, key=lambda s: s or 0.0, reverse=True)
    tokens = sum(n["tokens"] for n in result.details["tree"])
    assert ctx.usage.completion_tokens == tokens
    assert tokens <= strategy.planned_tokens(ctx.options.max_tokens, 1)


VOTE_TREE = {
    "": ["x = 2\n\n", "x = 3\n\n", "x = 4\n\n"],
    "x = 3\n\n": ["The answer is 5", "The answer is 6"],
}
VOTES = {
    "Choice 1:\nx = 2\n\nChoice 2:\nx = 3\n\nChoice 3:\nx = 4": [
        "The best choice is 2",
        "2",
        "Choice 1 is wrong. The best choice is **3**",
        "none of them",
        "The best choice is 7",
    ],
    "Choice 1:\nx = 3\n\nThe answer is 5\n\nChoice 2:\nx = 3\n\nThe answer is 6": [
        "The best choice is 1",
        "The best choice is 1",
        "The best choice is 2",
        "The best choice is 1",
        "1",
    ],
}


async def test_vote_valuation_counts_valid_votes_in_one_call_per_level() -> None:
    engine = scripted(VOTE_TREE, VOTES)
    ctx = make_context(engine)
    result = await tot(value="vote", votes=5, breadth=1, proposals=3, max_steps=2).run(ctx)
    nodes = by_text(result)
    # Two votes for x = 3, one for x = 4; "none of them" and choice 7 are ignored.
    assert [nodes[f"x = {i}\n\n"]["votes"] for i in (2, 3, 4)] == [0, 2, 1]
    assert [nodes[f"x = {i}\n\n"]["score"] for i in (2, 3, 4)] == pytest.approx([0, 2 / 3, 1 / 3])
    assert nodes["x = 3\n\n"]["kept"] and nodes["x = 4\n\n"]["pruned"]
    assert result.details["invalid_votes"] == 2
    assert nodes["x = 3\n\nThe answer is 5"]["score"] == pytest.approx(0.8)
    assert result.candidates[result.ranking[0]].sequence.text == "x = 3\n\nThe answer is 5"
    # Each level: one proposal call, one vote call with n=votes; the verifier is never asked.
    calls = engine.calls
    assert [(len(c.prompts), c.n) for c in calls] == [(1, 3), (1, 5), (1, 3), (1, 5)]
    assert calls[1].options.max_tokens == 64 and calls[1].options.stop == ()
    assert ctx.usage.verifier_calls == 0
    votes = sum(len(v) for level in VOTES.values() for v in level)
    assert result.details["vote_tokens"] == votes
    tree_tokens = sum(n["tokens"] for n in result.details["tree"])
    assert ctx.usage.completion_tokens == tree_tokens + votes


async def test_votes_follow_the_system_prompt_and_earlier_turns() -> None:
    engine = scripted(VOTE_TREE, VOTES)
    ctx = make_context(engine)
    system = {"role": "system", "content": "Answer tersely."}
    ctx.question = Question((system, {"role": "user", "content": QUESTION}))
    await tot(value="vote", votes=5, breadth=1, proposals=3, max_steps=2).run(ctx)
    vote_calls = [c for c in engine.calls if c.n == 5]
    assert len(vote_calls) == 2
    for call in vote_calls:
        assert call.prompt_texts()[0].startswith("<system>Answer tersely.\n<user>Question:\n")


def test_parse_vote() -> None:
    assert parse_vote("The best choice is 2", 3) == 1
    assert parse_vote("The best choice is **Choice 3**.", 3) == 2
    assert parse_vote("1 is weak; the best choice is 3. Not 2.", 3) == 2
    assert parse_vote("2", 3) == 1
    assert parse_vote("The best choice is 4", 3) is None
    assert parse_vote("0", 3) is None
    assert parse_vote("no idea", 3) is None
    assert parse_vote("9" * 5000, 3) is None


DFS_TREE = {
    "": ["A\n\n", "B\n\n"],
    "A\n\n": ["A1\n\n", "A2\n\n"],
    "B\n\n": ["B1\n\n", "B2\n\n"],
    "B\n\nB1\n\n": ["The answer is 4", "The answer is 5"],
}
STEP_VALUES.update(
    {"A": 0.9, "B": 0.6, "A1": 0.3, "A2": 0.2, "B1": 0.8, "B2": 0.7, "The answer is 4": 0.4}
)


async def test_dfs_backtracks_from_a_dead_branch_and_stops_at_the_first_good_solution() -> None:
    engine = scripted(DFS_TREE)
    ctx = make_context(engine)
    result = await tot(method="dfs", proposals=2, threshold=0.5).run(ctx)
    nodes = by_text(result)
    # A (0.9) first: both its children are below the threshold, so A is abandoned for B.
    assert nodes["A\n\n"]["visit"] == 0 and nodes["A\n\n"]["backtracked"]
    assert nodes["A\n\nA1\n\n"]["pruned"] and nodes["A\n\nA2\n\n"]["pruned"]
    assert nodes["B\n\n"]["visit"] == 1
    assert nodes["B\n\nB1\n\n"]["visit"] == 2
    goal = nodes["B\n\nB1\n\nThe answer is 5"]
    assert goal["visit"] == 3 and goal["found"] and goal["score"] == 0.6
    root = nodes[""]
    assert root["visit_order"] == [nodes["A\n\n"]["id"], nodes["B\n\n"]["id"]]
    # B2 was never explored: the search stopped at the first good solution.
    assert "visit" not in nodes["B\n\nB2\n\n"]
    solutions = [c.prompt_texts()[0].split("<assistant>", 1)[1] for c in generation_calls(engine)]
    assert solutions == ["", "A\n\n", "B\n\n", "B\n\nB1\n\n"]
    assert result.details["expansions"] == 4 and result.details["found"]
    assert result.candidates[result.ranking[0]].sequence.text == "B\n\nB1\n\nThe answer is 5"
    assert ctx.usage.completion_tokens == sum(n["tokens"] for n in result.details["tree"])


async def test_dfs_with_everything_pruned_returns_the_best_partial_solutions() -> None:
    engine = scripted(DFS_TREE)
    result = await tot(method="dfs", proposals=2, threshold=0.95).run(make_context(engine))
    assert result.details["found"] is False and result.details["expansions"] == 1
    assert [c.sequence.text for c in result.candidates] == ["A\n\n", "B\n\n"]
    assert result.ranking == [0, 1]


async def test_token_budget_stops_the_search_mid_level() -> None:
    engine = scripted(BFS_TREE)
    ctx = make_context(engine, budget=BudgetParams(max_tokens=40))
    result = await tot(breadth=2, proposals=3, step_tokens=8).run(ctx)
    # Level 1 cost 12 tokens; level 2 had room for one thought per kept node, then it stopped.
    assert [c.n for c in generation_calls(engine)] == [3, 1]
    assert ctx.budget.exhausted == "tokens"
    assert ctx.usage.completion_tokens <= 40
    assert result.details["levels"] == 2
    assert [c.sequence.text for c in result.candidates] == [
        "a2\n\n",
        "a1\n\nb1\n\n",
        "a3\n\nc1\n\n",
    ]
    assert result.ranking == [1, 2, 0]


async def test_cancelling_mid_search_aborts_the_levels_engine_requests() -> None:
    engine = scripted(BFS_TREE)

    def slow_after_first_level(step: str) -> float:
        engine.delay = 5.0
        return STEP_VALUES[step]

    engine.judge = slow_after_first_level
    task = asyncio.create_task(tot(breadth=2, proposals=3).run(make_context(engine)))
    await asyncio.sleep(0.05)
    assert engine.running_requests() == 2
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert engine.running_requests() == 0
    assert engine.aborted == ["req-g2-0", "req-g2-1"]


def test_worst_case_tokens_and_candidates() -> None:
    bfs = tot()
    assert bfs.planned_tokens(512, 1) == (3 + 7 * 9) * 128
    assert bfs.params.candidates() == 9
    assert tot(max_steps=8).planned_tokens(3, 1) == (3 + 2 * 9) * 3
    dfs = tot(method="dfs", value="vote", votes=4, max_expansions=10)
    assert dfs.planned_tokens(100, 1) == 10 * 3 * 100 + 10 * 4 * 64
    assert dfs.params.candidates() == 3


def test_prompts_are_cut_to_fit_the_context_longest_text_first() -> None:
    engine = ScriptedEngine(max_model_len=120)

    def build(texts: list[str]) -> list[dict]:
        return [{"role": "user", "content": "|".join(texts)}]

    texts = ["short", "x" * 50 + "END1", "y" * 90 + "END2"]
    ids = render_within_context(engine, build, texts, 20)
    assert len(ids) <= 100
    content = engine.decode(ids).removeprefix("<user>").removesuffix("\n<assistant>")
    short, first, second = content.split("|")
    assert short == "short" and first.endswith("END1") and second.endswith("END2")
    assert first.startswith("...") and second.startswith("...")
    assert abs(len(first) - len(second)) <= 1


async def test_unknown_verifier_is_a_client_error_before_any_generation() -> None:
    engine = scripted(BFS_TREE)
    with pytest.raises(StrategyInputError) as raised:
        await tot(verifier="oracle").run(make_context(engine))
    assert raised.value.param == "tts.verifier"
    assert engine.calls == []
