"""self_refine on the scripted engine: prompts, stopping rules, batching, budget, cancellation."""

import asyncio
from collections.abc import Callable

import pytest

from ponder.core.errors import StrategyInputError
from ponder.strategies.budget import BudgetParams
from ponder.strategies.self_refine import (
    NO_DOUBTED_STEP,
    VERDICT,
    SelfRefine,
    SelfRefineParams,
    verdict_critique,
)
from ponder.verifiers.base import Question
from tests.scripted import ScriptedEngine
from tests.strategies.helpers import QUESTION, generation_calls, make_context

WRONG = "2 + 3 = 6. The answer is 6."
RIGHT = "2 + 3 = 5. The answer is 5."
CRITIQUE = "2 + 3 is 5, not 6."


def between(text: str, start: str, end: str) -> str:
    return text.split(start, 1)[1].split(end, 1)[0]


def scripted(
    initial: list[str],
    rewrites: dict[str, str] | Callable[[str], str],
    judge: Callable[[str], float],
    critique: Callable[[str], str] = lambda answer: CRITIQUE,
) -> ScriptedEngine:
    """Initial answers in order; each answer's critique and rewrite by the answer they are of."""
    rewrite = rewrites.__getitem__ if isinstance(rewrites, dict) else rewrites

    def respond(prompt: str, n: int) -> list[str]:
        if "Review this answer step by step" in prompt:
            return [critique(between(prompt, "Answer:\n", "\n\nReview this answer"))] * n
        if "Write an improved answer" in prompt:
            return [rewrite(between(prompt, "Previous answer:\n", "\n\nFeedback on"))] * n
        return initial[:n]

    return ScriptedEngine(responder=respond, judge=judge)


def by_answer(scores: dict[str, float], default: float = 0.2) -> Callable[[str], float]:
    return lambda text: next((s for key, s in scores.items() if key in text), default)


def self_refine(**params: object) -> SelfRefine:
    return SelfRefine(SelfRefineParams(strategy="self_refine", **params))


def judge_calls(engine: ScriptedEngine) -> list:
    return [c for c in engine.calls if c not in generation_calls(engine)]


async def test_critique_sees_the_answer_and_the_rewrite_sees_both() -> None:
    engine = scripted([WRONG], {WRONG: RIGHT}, by_answer({"is 5": 0.95}))
    ctx = make_context(engine)
    result = await self_refine(return_trace=True).run(ctx)
    initial, critique, refine = (c.prompt_texts() for c in generation_calls(engine))
    assert len(initial) == len(critique) == len(refine) == 1
    assert critique[0].startswith(f"<user>Question:\n{QUESTION}\n\nAnswer:\n{WRONG}\n\nReview")
    assert f"Previous answer:\n{WRONG}\n\n" in refine[0]
    assert f"Feedback on the previous answer:\n{CRITIQUE}\n\n" in refine[0]
    assert [c.sequence.text for c in result.candidates] == [WRONG, RIGHT]
    assert [c.score for c in result.candidates] == pytest.approx([0.2, 0.95])
    assert [c.answer for c in result.candidates] == ["6", "5"]
    assert result.ranking == [1, 0]
    assert result.details["rounds"] == [1] and result.details["stopped"] == ["threshold"]
    (history,) = result.details["history"]
    assert history["answers"] == [WRONG, RIGHT] and history["critiques"] == [CRITIQUE]
    assert history["scores"] == pytest.approx([0.2, 0.95])
    assert history["critique_tokens"] == [len(CRITIQUE)]
    assert ctx.usage.completion_tokens == len(WRONG) + len(CRITIQUE) + len(RIGHT)
    assert ctx.usage.verifier_calls == 2 and ctx.usage.engine_calls == 3


async def test_stops_at_the_threshold_after_the_round_that_reaches_it() -> None:
    rewrites = {"draft 0": "draft 1", "draft 1": "draft 2", "draft 2": "draft 3"}
    engine = scripted(["draft 0"], rewrites, by_answer({"1": 0.5, "2": 0.92}, default=0.1))
    ctx = make_context(engine)
    result = await self_refine(max_rounds=5, threshold=0.9).run(ctx)
    assert result.details["rounds"] == [2] and result.details["stopped"] == ["threshold"]
    assert [c.sequence.text for c in result.candidates] == ["draft 0", "draft 1", "draft 2"]
    assert result.ranking == [2, 1, 0]
    assert len(generation_calls(engine)) == 1 + 2 * 2
    assert ctx.usage.verifier_calls == 3


async def test_an_initial_answer_at_the_threshold_is_not_refined() -> None:
    engine = scripted([RIGHT], {}, by_answer({"is 5": 0.95}))
    result = await self_refine().run(make_context(engine))
    assert result.details == {
        "verifier": "self_judge",
        "critic": "model",
        "rounds": [0],
        "stopped": ["threshold"],
    }
    assert len(engine.calls) == 2  # the answer and its score


async def test_stops_when_the_rewrite_is_unchanged_up_to_whitespace() -> None:
    same = "  2 + 3 = 6.\n The answer   is 6.\n"
    engine = scripted([WRONG], {WRONG: same}, by_answer({}, default=0.3))
    result = await self_refine(max_rounds=3).run(make_context(engine))
    assert result.details["rounds"] == [1] and result.details["stopped"] == ["unchanged"]
    # Equal scores: the later round ranks first.
    assert result.ranking == [1, 0]
    assert len(generation_calls(engine)) == 3


async def test_stops_at_max_rounds() -> None:
    rewrites = {f"draft {i}": f"draft {i + 1}" for i in range(5)}
    engine = scripted(["draft 0"], rewrites, by_answer({}, default=0.4))
    ctx = make_context(engine)
    result = await self_refine(max_rounds=2).run(ctx)
    assert result.details["rounds"] == [2] and result.details["stopped"] == ["max_rounds"]
    assert len(result.candidates) == 3
    # All score 0.4: latest first.
    assert result.ranking == [2, 1, 0]
    assert len(generation_calls(engine)) == 5 and ctx.usage.verifier_calls == 3


async def test_verifier_critic_quotes_the_doubted_steps_without_an_engine_call() -> None:
    wrong = "Add 2 and 3.\n\n2 + 3 = 6.\n\nSo the answer is 6."
    right = "Add 2 and 3.\n\n2 + 3 = 5.\n\nSo the answer is 5."
    engine = scripted([wrong], {wrong: right}, by_answer({"6": 0.1}, default=0.95))
    ctx = make_context(engine)
    result = await self_refine(verifier="step_judge", critic="verifier", return_trace=True).run(ctx)
    calls = generation_calls(engine)
    assert len(calls) == 2  # the answer and its rewrite: no critique call
    feedback = (
        "An automatic checker rated this answer 0.10, from 0 (wrong) to 1 (right).\n"
        "The steps it doubts most:\n"
        '- step 2: "2 + 3 = 6." (0.10)\n'
        '- step 3: "So the answer is 6." (0.10)'
    )
    assert f"Feedback on the previous answer:\n{feedback}\n\n" in calls[1].prompt_texts()[0]
    assert result.details["history"][0]["critiques"] == [feedback]
    assert result.candidates[0].step_scores == pytest.approx((0.95, 0.1, 0.1))
    assert result.details["stopped"] == ["threshold"]
    assert ctx.usage.completion_tokens == len(wrong) + len(right)


def test_verdict_critique_names_a_final_answer_unit_and_skips_good_steps() -> None:
    # Two written steps; an arithmetic-style verifier scores a third unit, the final answer.
    text = "a = 1\n\nb = 2"
    doubted = verdict_critique(0.2, (0.95, None, 0.2), text, "\n\n", 0.9)
    assert doubted.splitlines()[1:] == ["The steps it doubts most:", "- the final answer (0.20)"]
    fine = verdict_critique(0.95, (0.95, 0.99), text, "\n\n", 0.9)
    assert fine.splitlines()[1:] == [NO_DOUBTED_STEP]
    # An outcome verifier's critique is its score alone.
    assert verdict_critique(0.3, None, text, "\n\n", 0.9) == VERDICT.format(score=0.3)


async def test_chains_advance_together_one_batched_call_per_phase() -> None:
    initial = ["A: 2 + 3 = 6.", "B: 2 + 3 = 7.", "C: 2 + 3 = 8."]
    rewrites = {
        "A: 2 + 3 = 6.": "A: 2 + 3 = 5.",
        "B: 2 + 3 = 7.": "B: 2 + 3 = 9.",
        "B: 2 + 3 = 9.": "B: 2 + 3 = 4.",
        "C: 2 + 3 = 8.": "C: 2 + 3 = 1.",
        "C: 2 + 3 = 1.": "C: 2 + 3 = 5.",
    }
    engine = scripted(
        initial, rewrites, by_answer({"= 5.": 0.95}), critique=lambda answer: f"Recheck {answer}"
    )
    ctx = make_context(engine)
    result = await self_refine(n=3, max_rounds=2, return_trace=True).run(ctx)
    calls = generation_calls(engine)
    assert [(len(c.prompts), c.n) for c in calls] == [(1, 3), (3, 1), (3, 1), (2, 1), (2, 1)]
    assert [len(c.prompts) for c in judge_calls(engine)] == [3, 3, 2]
    # Round 2 critiques the current answers of the chains still running (B and C).
    assert [between(t, "Answer:\n", "\n\n") for t in calls[3].prompt_texts()] == [
        "B: 2 + 3 = 9.",
        "C: 2 + 3 = 1.",
    ]
    assert result.details["rounds"] == [1, 2, 2]
    assert result.details["stopped"] == ["threshold", "max_rounds", "threshold"]
    assert len(result.candidates) == 8
    # Both 0.95s first, the later round first; then the 0.2s, later rounds first.
    texts = [result.candidates[i].sequence.text for i in result.ranking]
    assert texts[:2] == ["C: 2 + 3 = 5.", "A: 2 + 3 = 5."]
    critiques = [c for h in result.details["history"] for c in h["critiques"]]
    assert len(critiques) == 5
    assert ctx.usage.completion_tokens == sum(
        c.sequence.num_tokens for c in result.candidates
    ) + sum(map(len, critiques))


async def test_token_budget_ends_the_run_mid_refinement() -> None:
    long_rewrite = "Let me redo this: 2 + 3 = 5, so the answer is certainly 5 now."
    engine = scripted([WRONG], {WRONG: long_rewrite}, by_answer({}, default=0.3))
    ctx = make_context(engine, max_tokens=64, budget=BudgetParams(max_tokens=100))
    result = await self_refine(max_rounds=3).run(ctx)
    assert ctx.budget.exhausted == "tokens"
    # 27 answer tokens and 18 critique tokens leave 55 for the rewrite, which is cut there.
    refine = generation_calls(engine)[2]
    assert refine.options.max_tokens == 100 - len(WRONG) - len(CRITIQUE)
    assert result.candidates[1].sequence.finish_reason == "length"
    assert ctx.usage.completion_tokens == 100
    assert result.details["rounds"] == [1] and result.details["stopped"] == ["budget"]
    assert len(generation_calls(engine)) == 3  # nothing was left for another critique


async def test_verifier_budget_ends_the_run() -> None:
    engine = scripted([WRONG], {WRONG: RIGHT}, by_answer({"is 5": 0.95}))
    ctx = make_context(engine, budget=BudgetParams(max_verifier_calls=1))
    result = await self_refine().run(ctx)
    assert ctx.budget.exhausted == "verifier_calls"
    assert [c.score for c in result.candidates] == [pytest.approx(0.2), None]
    assert result.ranking == [0, 1] and result.details["stopped"] == ["budget"]


async def test_deadline_during_a_critique_returns_the_answers_so_far() -> None:
    engine = scripted([WRONG], {WRONG: RIGHT}, by_answer({"is 5": 0.95}))

    def slow_after_scoring(text: str) -> float:
        engine.delay = 5.0
        return 0.2

    engine.judge = slow_after_scoring
    ctx = make_context(engine, budget=BudgetParams(deadline_s=0.2))
    result = await asyncio.wait_for(self_refine().run(ctx), timeout=2)
    assert ctx.budget.exhausted == "deadline"
    assert [c.sequence.text for c in result.candidates] == [WRONG]
    assert result.details["stopped"] == ["budget"] and result.details["rounds"] == [0]


async def test_cancelling_the_request_aborts_its_engine_requests() -> None:
    engine = scripted(["5", "6"], {}, by_answer({}))

    def slow_after_scoring(text: str) -> float:
        engine.delay = 5.0  # the critique call that follows hangs
        return 0.2

    engine.judge = slow_after_scoring
    task = asyncio.create_task(self_refine(n=2).run(make_context(engine)))
    for _ in range(100):
        await asyncio.sleep(0.01)
        if engine.running_requests():
            break
    assert engine.running_requests() == 2
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert engine.running_requests() == 0
    # The initial call was g0, the verifier v1; the critique batch g2 is aborted.
    assert engine.aborted == ["req-g2-0", "req-g2-1"]


async def test_prompts_that_would_overflow_the_context_cut_the_answer_from_its_start() -> None:
    long_answer = "x" * 300 + " so the answer is 6."
    engine = scripted([long_answer], lambda previous: RIGHT, by_answer({"is 5": 0.95}))
    engine.max_model_len = 800
    await self_refine().run(make_context(engine, max_tokens=400))
    critique, refine = generation_calls(engine)[1:]
    for call in (critique, refine):
        # A rewrite gets the whole `max_tokens`: the previous answer gives way instead.
        assert call.options.max_tokens == 400
        assert len(call.prompts[0]) + 400 <= engine.max_model_len
        assert "...x" in call.prompt_texts()[0] and "x" * 300 not in call.prompt_texts()[0]
        assert "x so the answer is 6.\n\n" in call.prompt_texts()[0]


async def test_logprobs_are_asked_for_answers_only_when_the_verifier_reads_them() -> None:
    engine = scripted(["draft 0"], {"draft 0": "draft 1"}, by_answer({}))
    strategy = self_refine(verifier="confidence", max_rounds=1, threshold=0.99)
    await strategy.run(make_context(engine))
    assert [c.options.logprobs for c in engine.calls] == [0, None, 0]


async def test_unknown_verifier_is_a_client_error_before_any_generation() -> None:
    engine = scripted([WRONG], {}, by_answer({}))
    with pytest.raises(StrategyInputError) as raised:
        await self_refine(verifier="oracle").run(make_context(engine))
    assert raised.value.param == "tts.verifier"
    assert engine.calls == []


def test_candidates_and_planned_tokens_are_the_worst_case() -> None:
    strategy = self_refine(n=2, max_rounds=3)
    assert strategy.params.candidates() == 8
    # Two chains: an answer each, then a critique and a rewrite per round.
    assert strategy.planned_tokens(100, 1) == 2 * (1 + 3 * 2) * 100
    # The verifier critic costs no tokens.
    assert self_refine(n=2, max_rounds=3, critic="verifier").planned_tokens(100, 1) == 800
    assert SelfRefineParams(strategy="self_refine").verifier_names() == {
        "tts.verifier": "self_judge"
    }


async def test_a_question_that_leaves_no_room_to_critique_stops_the_chain() -> None:
    engine = scripted([WRONG], {WRONG: RIGHT}, by_answer({"is 5": 0.95}))
    # The request's own prompt fits; the critique template around it does not.
    engine.max_model_len = 150
    result = await self_refine().run(make_context(engine))
    assert result.details["stopped"] == ["context"] and result.details["rounds"] == [0]
    assert len(generation_calls(engine)) == 1


async def test_the_system_prompt_and_earlier_turns_precede_the_critique() -> None:
    engine = scripted([WRONG], {WRONG: RIGHT}, by_answer({"is 5": 0.95}))
    ctx = make_context(engine)
    system = {"role": "system", "content": "Answer tersely."}
    ctx.question = Question((system, {"role": "user", "content": QUESTION}))
    await self_refine().run(ctx)
    for call in generation_calls(engine)[1:]:
        assert call.prompt_texts()[0].startswith("<system>Answer tersely.\n<user>Question:\n")
