"""Strategies on a thinking model: votes and verifiers see answers; budget forcing per candidate."""

from __future__ import annotations

import dataclasses

import pytest

from ponder.core.reasoning import ThinkingBudget
from ponder.strategies.best_of_n import BestOfN, BestOfNParams
from ponder.strategies.self_consistency import SelfConsistency, SelfConsistencyParams
from tests.scripted import ScriptedEngine
from tests.strategies.helpers import make_context
from tests.thinking import THINK


def _thinking_context(engine: ScriptedEngine, budget: ThinkingBudget | None = None, **kw: object):
    ctx = make_context(engine, **kw)  # type: ignore[arg-type]
    return dataclasses.replace(ctx, reasoning=THINK, thinking=budget)


async def test_self_consistency_votes_on_the_answer_not_the_thinking() -> None:
    # Each thinking boxes 7, which would win the vote if it were read; the answers say 5, 5, 6.
    texts = [r"\boxed{7}</think>5", r"\boxed{7}</think>5", r"\boxed{7}</think>6"]
    ctx = _thinking_context(ScriptedEngine(texts=texts))
    result = await SelfConsistency(SelfConsistencyParams(n=3)).run(ctx)
    assert result.details["votes"] == {"5": 2.0, "6": 1.0}
    chosen = result.candidates[result.ranking[0]].sequence
    assert (chosen.text, chosen.reasoning, chosen.content_tokens) == ("5", r"\boxed{7}", 1)


async def test_an_outcome_verifier_scores_the_answer_only() -> None:
    judged: list[str] = []

    def judge(answer: str) -> float:
        judged.append(answer)
        return 0.9 if answer == "66" else 0.1

    engine = ScriptedEngine(texts=["let me see 66</think>5", "hmm 5</think>66"], judge=judge)
    result = await BestOfN(BestOfNParams(n=2)).run(_thinking_context(engine))
    assert judged == ["5", "66"]
    assert result.candidates[result.ranking[0]].sequence.text == "66"


async def test_at_the_cap_the_thinking_is_ended_and_every_candidate_answers_in_one_call() -> None:
    engine = ScriptedEngine(texts=["abcdefghij", "klmnopqrst", "\n5", "\n6"])
    ctx = _thinking_context(engine, ThinkingBudget(max_tokens=4), max_tokens=32)
    generations = await ctx.sample(2)
    first, second = engine.calls
    assert first.n == 2 and first.options.max_tokens == 4 and "</think>" in first.options.stop
    # One call continues both candidates from their token ids, the delimiter appended.
    assert [t[-len("abcd</think>") :] for t in second.prompt_texts()] == [
        "abcd</think>",
        "klmn</think>",
    ]
    assert second.options.max_tokens == 32 - 4 and "</think>" not in second.options.stop
    answers = [(s.reasoning, s.text, s.content_tokens) for s in generations[0].sequences]
    assert answers == [("abcd", "\n5", 2), ("klmn", "\n6", 2)]
    # Generated tokens only: the appended delimiters are prompt tokens of the second call.
    assert ctx.usage.completion_tokens == 4 + 4 + 2 + 2 == ctx.budget.tokens_used
    assert ctx.usage.engine_calls == 2
    assert ctx.forcing.report() == {
        "rounds": 2,
        "forced_ends": 2,
        "waits": 0,
        "appended_tokens": 2 * len("</think>"),
    }


async def test_a_premature_end_of_thinking_is_replaced_by_wait() -> None:
    engine = ScriptedEngine(texts=["ab</think>", "cdefghijkl</think>", "42"])
    ctx = _thinking_context(engine, ThinkingBudget(min_tokens=20), max_tokens=64)
    generations = await ctx.sample(1)
    prompts = [c.prompt_texts()[0] for c in engine.calls]
    assert prompts[1].endswith("<assistant>abWait")
    assert prompts[2].endswith("<assistant>abWaitcdefghijkl</think>")
    sequence = generations[0].sequences[0]
    assert (sequence.reasoning, sequence.text) == ("abWaitcdefghijkl", "42")
    # 10 thinking tokens, then 18 (28 >= 20, so that end stands), then the answer.
    assert ctx.usage.completion_tokens == 10 + 18 + 2
    assert ctx.forcing.waits == 1 and ctx.forcing.forced_ends == 0


async def test_a_thinking_budget_of_zero_answers_at_once() -> None:
    engine = ScriptedEngine(texts=["7"])
    ctx = _thinking_context(engine, ThinkingBudget(max_tokens=0))
    generations = await ctx.sample(1)
    assert engine.calls[0].prompt_texts()[0].endswith("<assistant></think>")
    sequence = generations[0].sequences[0]
    assert (sequence.reasoning, sequence.text, sequence.content_tokens) == ("", "7", 1)


@pytest.mark.parametrize("max_tokens", [6])
async def test_the_request_length_caps_thinking_and_answer_together(max_tokens: int) -> None:
    engine = ScriptedEngine(texts=["abcdefghij"])
    ctx = _thinking_context(engine, ThinkingBudget(max_tokens=100), max_tokens=max_tokens)
    sequence = (await ctx.sample(1))[0].sequences[0]
    assert len(engine.calls) == 1 and sequence.finish_reason == "length"
    assert (sequence.reasoning, sequence.text, sequence.content_tokens) == ("abcdef", "", 0)
