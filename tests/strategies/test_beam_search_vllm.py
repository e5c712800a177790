"""Ponder's `beam_search` against vLLM's own online beam search, tie for tie.

Both read the same next-token log-probs: seeded random logits over a small vocabulary whose token
0 is EOS, some rounded to bf16 as a real model's are, so that exactly equal log-probs are common.
vLLM's `BeamSearchOnlineMixin.beam_search` runs unchanged on a fake engine client whose log-prob
dicts are built by vLLM's own `append_logprobs_for_next_position` (the sampled token first, then
the top k by rank); Ponder's strategy runs on the scripted engine. The best beams must be the
same: token ids, order, cumulative log-probs and finish reasons.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from vllm.entrypoints.generate.beam_search.online import BeamSearchOnlineMixin
from vllm.inputs import tokens_input
from vllm.logprobs import append_logprobs_for_next_position, create_sample_logprobs
from vllm.outputs import CompletionOutput, RequestOutput
from vllm.sampling_params import BeamSearchParams as VllmBeamSearchParams
from vllm.sampling_params import SamplingParams

from ponder.strategies.beam_search import BeamSearch, BeamSearchParams
from tests.scripted import ScriptedEngine
from tests.strategies.helpers import make_context

VOCAB = 24
EOS = 0
WIDTHS = (1, 2, 3, 4, 6)
LENGTH_PENALTIES = (0.0, 0.5, 1.0, 2.0, -1.0)
CASES = 60


def next_logprobs(ids: Sequence[int], seed: int, bf16: bool) -> tuple[list[float], list[int]]:
    """The float32 log-probs of the token after `ids`, and the token ids by rank (equal log-probs
    in a random order, as top-k leaves them)."""
    rng = np.random.default_rng([seed, *ids])
    logits = (rng.normal(16.0, 2.0, VOCAB)).astype(np.float32)
    if bf16:
        logits = torch.from_numpy(logits).to(torch.bfloat16).float().numpy()
    logprobs = torch.log_softmax(torch.from_numpy(logits), dim=-1).numpy()
    ranked = np.lexsort((rng.random(VOCAB), -logprobs))
    return logprobs.tolist(), ranked.tolist()


class FakeEngineClient:
    """What vLLM's beam search touches of an engine: `generate` and the watermark check."""

    def __init__(self, seed: int, bf16: bool) -> None:
        self.seed, self.bf16 = seed, bf16
        self.input_processor = SimpleNamespace(resolve_watermarking=lambda params: False)
        self.tied_steps = 0

    async def generate(
        self, prompt: Any, params: SamplingParams, request_id: str, **_: object
    ) -> AsyncIterator[RequestOutput]:
        ids = prompt["prompt_token_ids"]
        logprobs, ranked = next_logprobs(ids, self.seed, self.bf16)
        assert params.logprobs is not None and params.temperature == 0.0
        sampled = int(np.argmax(logprobs))  # greedy: the lowest id of highest log-prob
        top = ranked[: params.logprobs]
        self.tied_steps += len({logprobs[t] for t in top}) < len(top)
        rank = 1 + sum(lp > logprobs[sampled] for lp in logprobs)
        position = create_sample_logprobs(flat_logprobs=False)
        append_logprobs_for_next_position(
            position,
            [sampled, *top],
            [logprobs[t] for t in [sampled, *top]],
            [None] * (1 + len(top)),
            rank,
            params.logprobs,
        )
        output = CompletionOutput(
            index=0,
            text="",
            token_ids=[sampled],
            cumulative_logprob=logprobs[sampled],
            logprobs=position,
            finish_reason="length",
        )
        yield RequestOutput(request_id, None, list(ids), None, [output], finished=True)


class VllmBeamSearch(BeamSearchOnlineMixin):
    def __init__(self, client: FakeEngineClient) -> None:
        self.engine_client = client  # type: ignore[assignment]
        tokenizer = SimpleNamespace(eos_token_id=EOS, decode=lambda ids, **_: "")
        self.renderer = SimpleNamespace(get_tokenizer=lambda: tokenizer)  # type: ignore[assignment]


Beams = list[tuple[tuple[int, ...], float | None, str | None]]


async def vllm_beams(
    prompt: list[int], seed: int, bf16: bool, params: VllmBeamSearchParams
) -> tuple[Beams, int]:
    client = FakeEngineClient(seed, bf16)
    outputs = [
        o async for o in VllmBeamSearch(client).beam_search(tokens_input(prompt), "r", params)
    ]
    beams = [
        (tuple(o.token_ids), o.cumulative_logprob, o.finish_reason) for o in outputs[-1].outputs
    ]
    return beams, client.tied_steps


async def ponder_beams(
    seed: int, bf16: bool, params: VllmBeamSearchParams
) -> tuple[Beams, list[int]]:
    def next_tokens(ids: list[int]) -> list[tuple[int, float]]:
        logprobs, ranked = next_logprobs(ids, seed, bf16)
        return [(t, logprobs[t]) for t in ranked]

    ctx = make_context(ScriptedEngine(next_tokens=next_tokens), max_tokens=params.max_tokens)
    ctx.options = ctx.options.replace(ignore_eos=params.ignore_eos)
    strategy = BeamSearch(
        BeamSearchParams(
            strategy="beam_search",
            beam_width=params.beam_width,
            length_penalty=params.length_penalty,
        )
    )
    result = await strategy.run(ctx)
    beams: Beams = [
        (c.sequence.token_ids, c.sequence.cumulative_logprob, c.sequence.finish_reason)
        for c in result.candidates
    ]
    return beams, ctx.prompt_token_ids


@pytest.mark.parametrize("ignore_eos", [False, True])
@pytest.mark.parametrize("bf16", [False, True])
async def test_best_beams_equal_vllms_on_the_same_logprobs(bf16: bool, ignore_eos: bool) -> None:
    tied_steps = eos_ended = 0
    for seed in range(CASES):
        params = VllmBeamSearchParams(
            beam_width=WIDTHS[seed % len(WIDTHS)],
            max_tokens=1 + seed * 7 % 9,
            ignore_eos=ignore_eos,
            length_penalty=LENGTH_PENALTIES[seed // len(WIDTHS) % len(LENGTH_PENALTIES)],
        )
        ours, prompt = await ponder_beams(seed, bf16, params)
        theirs, tied = await vllm_beams(prompt, seed, bf16, params)
        assert ours == theirs, f"seed {seed}, {params}"
        tied_steps += tied
        eos_ended += sum(b[0][-1:] == (EOS,) for b in ours)
    # The cases reach what the comparison is about: exact ties, and (ignore_eos) beams that end
    # with EOS, which vLLM's length penalty counts one token shorter.
    assert tied_steps > 0 if bf16 else tied_steps == 0
    assert eos_ended > 0 if ignore_eos else eos_ended == 0
