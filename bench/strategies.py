"""Accuracy against compute for every strategy, at a matched budget of generated tokens.

One process starts the engine and serves Ponder's API on it, then runs a fixed set of problems
made offline (two-digit additions, and `reasoning-gym` chain sums when it is installed) through
each strategy with the same `tts.budget.max_tokens`, one request at a time. It prints, per
strategy: accuracy, mean generated tokens, mean wall time, and the prefix-cache hit rate (prompt
tokens served from vLLM's cache over prompt tokens submitted).

    .venv/bin/pip install reasoning-gym   # optional: adds the chain-sum problems
    .venv/bin/python bench/strategies.py [--problems 6] [--budget 768]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import time
from collections.abc import Callable

import httpx
from common import served

from ponder.core.answers import answer_key, extract_answer
from ponder.server.settings import Settings

INSTRUCTION = " Think step by step, one short step per paragraph, and end with 'The answer is N.'"
STEP = {"max_steps": 4, "step_tokens": 32, "verifier": "arithmetic", "aggregation": "last"}


def strategies(budget: int) -> dict[str, dict]:
    return {
        "none (greedy)": {"strategy": "none"},
        "self_consistency@8": {"strategy": "self_consistency", "n": 8},
        "best_of_n@8 (arithmetic)": {
            "strategy": "best_of_n",
            "n": 8,
            "verifier": "arithmetic",
            "aggregation": "last",
        },
        "beam_search (width 4)": {"strategy": "beam_search", "beam_width": 4},
        "prm_beam_search (8/2)": {"strategy": "prm_beam_search", "n": 8, "beam_width": 2, **STEP},
        "prm_beam_search dvts (8/2)": {
            "strategy": "prm_beam_search",
            "n": 8,
            "beam_width": 2,
            "dvts": True,
            **STEP,
        },
        "mcts (8 sims x 2)": {"strategy": "mcts", "simulations": 8, "expansions": 2, **STEP},
        "tree_of_thoughts bfs (2x3)": {
            "strategy": "tree_of_thoughts",
            "breadth": 2,
            "proposals": 3,
            **STEP,
        },
        "self_refine (2 rounds)": {
            "strategy": "self_refine",
            "max_rounds": 2,
            "verifier": "arithmetic",
            "aggregation": "last",
        },
    }


def problems(count: int) -> list[tuple[str, Callable[[str | None], bool]]]:
    rng = random.Random(11)
    made: list[tuple[str, Callable[[str | None], bool]]] = []
    for _ in range(count):
        a, b = rng.randint(10, 99), rng.randint(10, 99)
        truth = f"#{a + b}"
        made.append(
            (f"What is {a} + {b}?", lambda ans, t=truth: ans is not None and answer_key(ans) == t)
        )
    try:
        import reasoning_gym
    except ImportError:
        logging.warning("reasoning-gym is not installed: two-digit additions only")
        return made
    dataset = reasoning_gym.create_dataset("chain_sum", size=count, seed=5)
    for entry in dataset:

        def check(ans: str | None, e: dict = entry) -> bool:
            return ans is not None and dataset.score_answer(ans, e) == 1.0

        made.append((entry["question"], check))
    return made


async def run(args: argparse.Namespace) -> None:
    settings = Settings(port=args.port, max_request_tokens=1 << 20)
    rows = []
    async with (
        served(settings) as (engine, base),
        httpx.AsyncClient(base_url=base, timeout=900) as client,
    ):
        todo = problems(args.problems)
        for name, tts in strategies(args.budget).items():
            correct = tokens = prompt = cached = 0
            seconds = 0.0
            for question, check in todo:
                body = {
                    "model": engine.model_name,
                    "messages": [{"role": "user", "content": question + INSTRUCTION}],
                    "max_completion_tokens": 128,
                    "temperature": 0.0 if tts["strategy"] in ("none", "beam_search") else 0.8,
                    "tts": {**tts, "budget": {"max_tokens": args.budget}},
                }
                t0 = time.perf_counter()
                response = await client.post("/v1/chat/completions", json=body)
                seconds += time.perf_counter() - t0
                response.raise_for_status()
                data = response.json()
                correct += check(extract_answer(data["choices"][0]["message"]["content"]))
                usage = data["usage"]
                tokens += usage["completion_tokens"]
                prompt += usage["prompt_tokens"]
                cached += usage["prompt_tokens_details"]["cached_tokens"]
            n = len(todo)
            rows.append((name, correct / n, tokens / n, seconds / n, cached / max(prompt, 1)))
    print(f"\n{len(todo)} problems, budget {args.budget} generated tokens per problem")
    print("| strategy | accuracy | generated tokens | wall s | prefix-cache hits |")
    print("|---|---|---|---|---|")
    for name, accuracy, tokens, seconds, hit in rows:
        print(f"| {name} | {accuracy:.0%} | {tokens:.0f} | {seconds:.1f} | {hit:.0%} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--problems", type=int, default=6, help="per problem family")
    parser.add_argument("--budget", type=int, default=768)
    parser.add_argument("--port", type=int, default=8767)
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
