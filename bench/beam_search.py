"""Ponder's `beam_search` against vLLM's own beam search, on one engine, same width and prompts.

One process starts one vLLM engine and serves Ponder's API on it. For each problem it runs
vLLM's online beam search (the implementation behind vLLM's OpenAI server, driven directly on
the same `AsyncLLM`, no HTTP) twice, Ponder's strategy directly on the same engine, and the same
search through Ponder's HTTP server, in an order that alternates from problem to problem. It prints
total times (of vLLM's first run), the ratios to vLLM (below 1 means Ponder is faster) and how
often the best beams' token ids agree: Ponder's with vLLM's, beside vLLM's with its own second run
on the same engine, the baseline (batch shape and the prefix cache move log-probs by a few
hundredths of a nat, enough to flip near-tied beams), and the mean absolute difference of the
best beams' cumulative log-probs.

    .venv/bin/python bench/beam_search.py [--problems 8] [--width 4] [--max-tokens 32]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
import uuid
from collections.abc import Sequence
from typing import Any

import httpx
from common import addition_problems, served

from ponder.core.engine import SamplingOptions
from ponder.server.settings import Settings
from ponder.strategies.beam_search import BeamSearch, BeamSearchParams
from ponder.strategies.budget import Budget, BudgetParams
from ponder.strategies.context import StrategyContext
from ponder.verifiers.base import Question

# A best beam: its token ids (no trailing EOS) and cumulative log-prob.
Beam = tuple[tuple[int, ...], float]


def without_eos(token_ids: Sequence[int], eos: int | None) -> tuple[int, ...]:
    ids = tuple(token_ids)
    return ids[:-1] if ids[-1:] == (eos,) else ids


async def vllm_beam_search(engine: Any, prompt_ids: list[int], width: int, tokens: int) -> Beam:
    from vllm.entrypoints.generate.beam_search.online import BeamSearchOnlineMixin
    from vllm.inputs import tokens_input
    from vllm.sampling_params import BeamSearchParams

    llm = engine._llm

    class OnEngine(BeamSearchOnlineMixin):
        engine_client = llm
        renderer = llm.renderer

    params = BeamSearchParams(beam_width=width, max_tokens=tokens, length_penalty=1.0)
    final = None
    async for output in OnEngine().beam_search(tokens_input(prompt_ids), uuid.uuid4().hex, params):
        final = output
    assert final is not None
    best = final.outputs[0]
    return without_eos(best.token_ids, engine.eos_token_id), float(best.cumulative_logprob)


async def direct(engine: Any, messages: list[dict], width: int, tokens: int) -> Beam:
    """Ponder's strategy on the engine, without the HTTP server."""
    ctx = StrategyContext(
        engine=engine,
        verifiers={},
        question=Question(tuple(messages)),
        prompt_token_ids=engine.render_chat(messages),
        options=SamplingOptions(max_tokens=tokens),
        budget=Budget(BudgetParams()),
    )
    result = await BeamSearch(BeamSearchParams(strategy="beam_search", beam_width=width)).run(ctx)
    best = result.candidates[0].sequence
    assert best.cumulative_logprob is not None
    return without_eos(best.token_ids, engine.eos_token_id), best.cumulative_logprob


async def run(args: argparse.Namespace) -> None:
    settings = Settings(port=args.port)
    ours_s = theirs_s = direct_s = 0.0
    # Best beams with equal token ids, and the summed |difference| of their cumulative log-probs:
    # Ponder (direct) against vLLM's first run, and vLLM's second run against its first.
    agree = {"ponder": 0, "vllm": 0}
    logprob_gap = {"ponder": 0.0, "vllm": 0.0}
    async with (
        served(settings) as (engine, base),
        httpx.AsyncClient(base_url=base, timeout=600) as client,
    ):
        for i, question in enumerate(addition_problems(args.problems + 1, seed=3)):
            messages = [{"role": "user", "content": question}]
            prompt_ids = engine.render_chat(messages)
            request = {
                "model": engine.model_name,
                "messages": messages,
                "max_completion_tokens": args.max_tokens,
                "tts": {"strategy": "beam_search", "beam_width": args.width},
            }
            # Coroutines, started one at a time below.
            runs = {
                "vllm": vllm_beam_search(engine, prompt_ids, args.width, args.max_tokens),
                "direct": direct(engine, messages, args.width, args.max_tokens),
                "http": client.post("/v1/chat/completions", json=request),
                "vllm again": vllm_beam_search(engine, prompt_ids, args.width, args.max_tokens),
            }
            # Alternate who goes first, so that no side always meets a cold prefix cache.
            order = list(runs) if i % 2 == 0 else list(reversed(runs))
            took, results = {}, {}
            for name in order:
                started = time.perf_counter()
                results[name] = await runs[name]
                took[name] = time.perf_counter() - started
            results["http"].raise_for_status()
            if i == 0:  # warm-up for all three
                continue
            theirs_s += took["vllm"]
            direct_s += took["direct"]
            ours_s += took["http"]
            for side, beam in (("ponder", results["direct"]), ("vllm", results["vllm again"])):
                agree[side] += beam[0] == results["vllm"][0]
                logprob_gap[side] += abs(beam[1] - results["vllm"][1])
    print(f"\n{args.problems} problems, beam width {args.width}, {args.max_tokens} tokens")
    print("| implementation | total s | per problem s |")
    print("|---|---|---|")
    print(f"| vLLM beam search (direct) | {theirs_s:.2f} | {theirs_s / args.problems:.2f} |")
    print(f"| Ponder beam_search (direct) | {direct_s:.2f} | {direct_s / args.problems:.2f} |")
    print(f"| Ponder beam_search (HTTP) | {ours_s:.2f} | {ours_s / args.problems:.2f} |")
    print(
        f"\nratio Ponder / vLLM: direct {direct_s / theirs_s:.3f}, through HTTP "
        f"{ours_s / theirs_s:.3f}"
    )
    print("\n| best beam vs vLLM's first run | same token ids | mean abs. diff. of cum. log-prob |")
    print("|---|---|---|")
    for side, label in (("vllm", "vLLM, second run (baseline)"), ("ponder", "Ponder (direct)")):
        gap = logprob_gap[side] / args.problems
        print(f"| {label} | {agree[side]}/{args.problems} | {gap:.5f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--problems", type=int, default=8)
    parser.add_argument("--width", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--port", type=int, default=8766)
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
