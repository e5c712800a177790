"""What Ponder's server costs on top of the engine: best-of-8 and self-consistency@8.

One process starts one vLLM engine, serves Ponder's HTTP API on it, and for each problem times
the request through the server and the same generation (same prompt tokens, n, length and
sampling, `ignore_eos` so lengths match exactly) issued straight to vLLM's `AsyncLLM`. Requests run
one at a time, alternating server and direct, and which side goes first swaps from one problem to
the next: the second request of a pair finds the prompt in the prefix cache and the machine
warm, which a fixed order would credit to one side. The ratio printed is total server time /
total direct time.

    .venv/bin/python bench/overhead.py [--problems 10] [--max-tokens 64] [--n 8]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import time
import uuid

import httpx
from common import addition_problems, served

from ponder.server.settings import Settings

WORKLOADS = {
    "best_of_n@8 (confidence)": {"strategy": "best_of_n", "verifier": "confidence"},
    "self_consistency@8": {"strategy": "self_consistency"},
}


async def direct(engine: object, prompt_ids: list[int], n: int, max_tokens: int, logprobs: bool):
    """The same sampling on vLLM's engine object itself, below Ponder's engine wrapper."""
    from vllm import SamplingParams
    from vllm.sampling_params import RequestOutputKind

    params = SamplingParams(
        n=n,
        max_tokens=max_tokens,
        temperature=0.8,
        ignore_eos=True,
        logprobs=0 if logprobs else None,
        output_kind=RequestOutputKind.FINAL_ONLY,
    )
    llm = engine._llm  # type: ignore[attr-defined]
    async for output in llm.generate({"prompt_token_ids": prompt_ids}, params, uuid.uuid4().hex):
        final = output
    return sum(len(o.token_ids) for o in final.outputs)


async def run(args: argparse.Namespace) -> None:
    rows = []
    settings = Settings(port=args.port, max_concurrent_requests=4)
    async with (
        served(settings) as (engine, base),
        httpx.AsyncClient(base_url=base, timeout=600) as client,
    ):
        for name, tts in WORKLOADS.items():
            server_s = direct_s = 0.0
            server_tokens = direct_tokens = 0
            ratios = []
            for i, question in enumerate(addition_problems(args.problems + 1)):
                messages = [{"role": "user", "content": question}]
                body = {
                    "model": engine.model_name,
                    "messages": messages,
                    "max_completion_tokens": args.max_tokens,
                    "temperature": 0.8,
                    "ignore_eos": True,
                    "tts": {**tts, "n": args.n},
                }
                prompt_ids = engine.render_chat(messages)
                timed: dict[str, float] = {}
                for side in ("server", "direct") if i % 2 else ("direct", "server"):
                    started = time.perf_counter()
                    if side == "server":
                        response = await client.post("/v1/chat/completions", json=body)
                    else:
                        tokens = await direct(
                            engine, prompt_ids, args.n, args.max_tokens, "verifier" in tts
                        )
                    timed[side] = time.perf_counter() - started
                response.raise_for_status()
                if i == 0:  # warm-up for both paths
                    continue
                server_s += timed["server"]
                direct_s += timed["direct"]
                server_tokens += response.json()["usage"]["completion_tokens"]
                direct_tokens += tokens
                ratios.append(timed["server"] / timed["direct"])
            assert server_tokens == direct_tokens, (server_tokens, direct_tokens)
            rows.append((name, server_s, direct_s, statistics.median(ratios), server_tokens))
    print(f"\n{args.problems} problems, n={args.n}, {args.max_tokens} tokens each (ignore_eos)")
    print("| workload | server s | direct s | ratio (total) | ratio (median) | tokens |")
    print("|---|---|---|---|---|---|")
    for name, s, d, median, tokens in rows:
        print(f"| {name} | {s:.2f} | {d:.2f} | {s / d:.3f} | {median:.3f} | {tokens} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--problems", type=int, default=10)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--port", type=int, default=8765)
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
