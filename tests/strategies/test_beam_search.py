"""Token-level beam search on a scripted next-token distribution, checked by hand."""

import math

import pytest

from ponder.core.errors import StrategyInputError
from ponder.strategies.beam_search import BeamSearch, BeamSearchParams
from ponder.strategies.budget import BudgetParams
from tests.scripted import ScriptedEngine
from tests.strategies.helpers import make_context

EOS = 0
A, B, C = ord("a"), ord("b"), ord("c")
LOG = math.log

# After the prompt: "a" is likeliest, but "b" leads to a sure continuation.
TABLE: dict[str, list[tuple[int, float]]] = {
    "": [(A, LOG(0.5)), (B, LOG(0.4)), (C, LOG(0.1))],
    "a": [(A, LOG(0.3)), (B, LOG(0.3)), (EOS, LOG(0.4))],
    "b": [(C, LOG(0.9)), (EOS, LOG(0.1))],
    "c": [(EOS, LOG(1.0))],
}


def engine() -> ScriptedEngine:
    def next_tokens(prompt: list[int]) -> list[tuple[int, float]]:
        generated = "".join(map(chr, prompt)).split("<assistant>", 1)[1]
        return TABLE.get(generated[-1:] if generated else "", [(EOS, 0.0)])

    return ScriptedEngine(next_tokens=next_tokens)


def beam(width: int, **params: object) -> BeamSearch:
    return BeamSearch(BeamSearchParams(strategy="beam_search", beam_width=width, **params))


async def test_keeps_the_best_extensions_and_ranks_with_the_length_penalty() -> None:
    scripted = engine()
    ctx = make_context(scripted, max_tokens=4)
    result = await beam(2, length_penalty=0.0).run(ctx)
    texts = [c.sequence.text for c in result.candidates]
    # Paths: "a"+EOS = 0.5*0.4 = 0.20; "bc"+EOS = 0.4*0.9 = 0.36; with no length penalty the
    # higher cumulative probability wins.
    assert texts == ["bc", "a"]
    assert result.candidates[0].sequence.cumulative_logprob == pytest.approx(LOG(0.36))
    assert result.candidates[0].sequence.finish_reason == "stop"
    # Step 1 extends the root; later steps extend both live beams in one call each.
    assert [len(c.prompts) for c in scripted.calls][:2] == [1, 2]
    assert all(c.options.logprobs == 4 and c.options.max_tokens == 1 for c in scripted.calls)
    assert ctx.usage.completion_tokens == sum(len(c.prompts) for c in scripted.calls)


async def test_length_penalty_counts_the_prompt_as_vllm_does() -> None:
    ctx = make_context(engine(), max_tokens=4)
    result = await beam(2, length_penalty=1.0).run(ctx)
    prompt = len(ctx.prompt_token_ids)
    expected = {"bc": LOG(0.36) / (prompt + 2), "a": LOG(0.2) / (prompt + 1)}
    ranked = sorted(expected, key=lambda t: -expected[t])
    assert [c.sequence.text for c in result.candidates] == ranked
    for candidate in result.candidates:
        assert candidate.score == pytest.approx(expected[candidate.sequence.text])


async def test_stop_sequences_are_refused_and_the_budget_is_kept() -> None:
    ctx = make_context(engine(), max_tokens=4)
    ctx.options = ctx.options.replace(stop=("x",))
    with pytest.raises(StrategyInputError) as raised:
        await beam(2).run(ctx)
    assert raised.value.param == "stop"
    ctx = make_context(engine(), max_tokens=4, budget=BudgetParams(max_tokens=2))
    result = await beam(2).run(ctx)
    assert ctx.usage.completion_tokens <= 2 and ctx.budget.exhausted == "tokens"
    assert result.candidates
