"""How much of the API process's CPU does each generated token cost, per strategy?

On a fast GPU the engine outruns the Python that reads its output: the held-out run on an H200
(docs/results/heldout/) had DeepConf online, which streams 16 candidates with top-5 log-probs,
take 2.5 times self-consistency@16's wall time, and its stops came too late to save tokens. The
engine core runs in a process of its own, so this process's CPU time (`time.process_time`: the
API, vLLM's output handling, the client) divided by the tokens generated is the per-token cost
that bounds how fast a strategy can go, and it can be measured on the CPU machine. One run
prints each strategy's microseconds per token and its ratio to self-consistency@16 (one engine
request of n=16, no log-probs).

    flock /tmp/ponder-engine.lock .venv/bin/python bench/stream_cost.py [--problems 24]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time

import httpx
from common import addition_problems, served

from ponder.server.settings import Settings

CONFIGS = {
    "self_consistency@16": {"strategy": "self_consistency", "n": 16},
    "adaptive_sc@16": {"strategy": "self_consistency", "n": 16, "adaptive": True},
    "deepconf_offline@16": {"strategy": "deepconf", "n": 16, "mode": "offline"},
    "deepconf_online@16": {"strategy": "deepconf", "n": 16, "mode": "online"},
}


async def run(problems: int, concurrency: int) -> None:
    prompts = addition_problems(problems, seed=7)
    async with (
        served(Settings(port=0)) as (engine, base),
        httpx.AsyncClient(base_url=base, timeout=900) as client,
    ):
        gate = asyncio.Semaphore(concurrency)

        async def one(prompt: str, tts: dict) -> int:
            async with gate:
                response = await client.post(
                    "/v1/chat/completions",
                    json={
                        "model": engine.model_name,
                        "messages": [{"role": "user", "content": prompt}],
                        "max_completion_tokens": 128,
                        "temperature": 0.7,
                        "tts": tts,
                    },
                )
            response.raise_for_status()
            return int(response.json()["usage"]["completion_tokens"])

        await one(prompts[0], {"strategy": "none"})  # warm-up
        costs = {}
        for label, tts in CONFIGS.items():
            cpu, wall = time.process_time(), time.perf_counter()
            tokens = sum(await asyncio.gather(*(one(p, tts) for p in prompts)))
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            costs[label] = cpu / tokens * 1e6
            print(
                f"| {label} | {tokens} | {wall:.1f} | {costs[label]:.1f} | "
                f"{costs[label] / costs['self_consistency@16']:.2f} |",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=24)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    print("| strategy | tokens | wall s | API-process CPU µs per token | ratio to sc@16 |")
    print("|---|---|---|---|---|")
    asyncio.run(run(args.problems, args.concurrency))


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    main()
