"""Ponder's `beam_search` against vLLM's own beam search, on one engine, same width and prompts.

One process starts one vLLM engine and serves Ponder's API on it. For each problem it runs
vLLM's online beam search (the implementation behind vLLM's OpenAI server, driven directly on
the same `AsyncLLM`, no HTTP), Ponder's strategy directly on the same engine, and the same search
through Ponder's HTTP server, in an order that alternates from problem to problem. It prints
total times, the ratios to vLLM (below 1 means Ponder is faster) and how often the best beams
agree.

    .venv/bin/python bench/beam_search.py [--problems 8] [--width 4] [--max-tokens 32]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import time
import uuid
from collections.abc import Sequence

import httpx
from common import addition_problems, served

from ponder.core.engine import SamplingOptions
from ponder.server.settings import Settings
from ponder.strategies.beam_search import BeamSearch, BeamSearchParams
from ponder.strategies.budget import Budget, BudgetParams
from ponder.strategies.context import StrategyContext
from ponder.verifiers.base import Question

Best = tuple[tuple[int, ...], float]  # the best beam's token ids (no EOS) and cumulative log-prob


def _without_eos(tokens: Sequence[int], eos: int | None) -> tuple[int, ...]:
    return tuple(tokens[:-1] if tokens and tokens[-1] == eos else tokens)


async def vllm_beam_search(engine: object, prompt_ids: list[int], width: int, tokens: int) -> Best:
    from vllm.entrypoints.generate.beam_search.online import BeamSearchOnlineMixin
    from vllm.inputs import tokens_input
    from vllm.sampling_params import BeamSearchParams

    llm = engine._llm  # type: ignore[attr-defined]

    class OnEngine(BeamSearchOnlineMixin):
        engine_client = llm
        renderer = llm.renderer

    params = BeamSearchParams(beam_width=width, max_tokens=tokens, length_penalty=1.0)
    final = None
    async for output in OnEngine().beam_search(tokens_input(prompt_ids), uuid.uuid4().hex, params):
        final = output
    assert final is not None
    best = final.outputs[0]
    eos = llm.renderer.get_tokenizer().eos_token_id
    return _without_eos(best.token_ids, eos), float(best.cumulative_logprob or 0.0)


async def direct(engine: object, messages: list[dict], width: int, tokens: int) -> Best:
    """Ponder's strategy on the engine, without the HTTP server."""
    ctx = StrategyContext(
        engine=engine,  # type: ignore[arg-type]
        verifiers={},
        question=Question(tuple(messages)),
        prompt_token_ids=engine.render_chat(messages),  # type: ignore[attr-defined]
        options=SamplingOptions(max_tokens=tokens),
        budget=Budget(BudgetParams()),
    )
    result = await BeamSearch(BeamSearchParams(strategy="beam_search", beam_width=width)).run(ctx)
    best = result.candidates[0].sequence
    eos = engine._llm.renderer.get_tokenizer().eos_token_id  # type: ignore[attr-defined]
    return _without_eos(best.token_ids, eos), float(best.cumulative_logprob or 0.0)


async def run(args: argparse.Namespace) -> None:
    settings = Settings(port=args.port)
    ours_s = theirs_s = direct_s = 0.0
    agree = self_agree = 0
    gaps: list[float] = []
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
                "vllm again": vllm_beam_search(engine, prompt_ids, args.width, args.max_tokens),
                "direct": direct(engine, messages, args.width, args.max_tokens),
                "http": client.post("/v1/chat/completions", json=request),
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
            agree += results["direct"][0] == results["vllm"][0]
            self_agree += results["vllm again"][0] == results["vllm"][0]
            gaps.append(abs(results["direct"][1] - results["vllm"][1]))
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
    print(
        f"best beams equal (token ids): Ponder vs vLLM {agree}/{args.problems}, vLLM vs vLLM "
        f"{self_agree}/{args.problems}; mean |cumulative log-prob gap| Ponder vs vLLM "
        f"{statistics.mean(gaps):.4f}"
    )


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
