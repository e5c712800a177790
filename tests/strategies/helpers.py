"""Building a strategy context around the scripted engine."""

from __future__ import annotations

from ponder.core.engine import SamplingOptions
from ponder.strategies.budget import Budget, BudgetParams
from ponder.strategies.context import StrategyContext
from ponder.verifiers.base import Question
from ponder.verifiers.loading import load_configured_verifiers
from tests.scripted import JUDGE_MARKER, STEP_MARKER, ScriptedEngine

QUESTION = "What is 2 + 3?"


def make_context(
    engine: ScriptedEngine,
    *,
    max_tokens: int = 64,
    choices: int = 1,
    seed: int | None = None,
    budget: BudgetParams | None = None,
    logprobs: int | None = None,
) -> StrategyContext:
    messages = ({"role": "user", "content": QUESTION},)
    return StrategyContext(
        engine=engine,
        verifiers=load_configured_verifiers(engine),
        question=Question(messages),
        prompt_token_ids=engine.render_chat(list(messages)),
        options=SamplingOptions(
            max_tokens=max_tokens, temperature=0.8, seed=seed, logprobs=logprobs
        ),
        budget=Budget(budget or BudgetParams()),
        choices=choices,
        request_id="req",
    )


def generation_calls(engine: ScriptedEngine) -> list:
    """Engine calls that sampled candidates (not judge prompts)."""
    return [
        c
        for c in engine.calls
        if not any(JUDGE_MARKER in t or STEP_MARKER in t for t in c.prompt_texts())
    ]
