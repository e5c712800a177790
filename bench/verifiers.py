"""Verifier throughput, batched against one by one, and the step-score cache in a search.

One process starts the policy engine and samples step-by-step answers to two-digit additions.
Each verifier then scores all of them twice, from a fresh instance each time (so no cache helps):
once as one batch, once candidate by candidate; the ratio is printed. Finally a PRM-beam-search
access pattern (every depth re-scores all partial answers, each one step longer than before)
runs through the step judge, and the share of step scores served from the cache is printed.

    .venv/bin/python bench/verifiers.py [--problems 4] [--n 8] [--max-tokens 96]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import time

from ponder.core.engine import SamplingOptions
from ponder.server.engines import start_engine
from ponder.server.model_store import default_model_folder
from ponder.server.settings import Settings
from ponder.verifiers.base import Candidate, Question
from ponder.verifiers.orm import OutcomeRewardModel
from ponder.verifiers.self_judge import SelfJudgeVerifier
from ponder.verifiers.step_judge import StepJudgeVerifier
from ponder.verifiers.steps import split_steps

PROMPT = "What is {a} + {b}? Work it out in short steps separated by blank lines."


async def sample(engine, problems: int, n: int, max_tokens: int):
    rng = random.Random(0)
    batches = []
    for _ in range(problems):
        question = PROMPT.format(a=rng.randint(10, 99), b=rng.randint(10, 99))
        messages = ({"role": "user", "content": question},)
        prompt = engine.render_chat(list(messages))
        options = SamplingOptions(max_tokens=max_tokens, temperature=0.8)
        (generation,) = await engine.generate([prompt], options, n=n, request_id=f"s{len(batches)}")
        candidates = [Candidate(s.text) for s in generation.sequences]
        batches.append((Question(messages), candidates))
    return batches


async def throughput(make, batches) -> tuple[float, float]:
    total = sum(len(c) for _, c in batches)
    # Warm-up: the first call of a kind pays one-time costs on both paths.
    await make().score(batches[0][0], batches[0][1][:2], request_id="w")
    verifier = make()
    t0 = time.perf_counter()
    for question, candidates in batches:
        await verifier.score(question, candidates, request_id="b")
    batched = time.perf_counter() - t0
    verifier = make()
    t0 = time.perf_counter()
    for question, candidates in batches:
        for candidate in candidates:
            await verifier.score(question, [candidate], request_id="o")
    single = time.perf_counter() - t0
    return total / batched, total / single


async def beam_pattern(engine, batches) -> tuple[int, int, int]:
    """Score every partial answer at every depth, as a step-level beam search does."""
    verifier = StepJudgeVerifier(engine=engine)
    hits = asked = uncached = 0
    for question, candidates in batches:
        steps = [split_steps(c.text) for c in candidates]
        for depth in range(1, max(len(s) for s in steps) + 1):
            partial = [Candidate("\n\n".join(s[:depth])) for s in steps if len(s) >= depth]
            scores = await verifier.score(question, partial, request_id="beam")
            hits += scores.cache_hits
            asked += sum(min(len(s), depth) for s in steps if len(s) >= depth)
            uncached += sum(depth for s in steps if len(s) >= depth)
    return hits, asked, uncached


async def run(args: argparse.Namespace) -> None:
    engine = start_engine(Settings())
    batches = await sample(engine, args.problems, args.n, args.max_tokens)
    steps = sum(len(split_steps(c.text)) for _, cs in batches for c in cs)
    total = sum(len(c) for _, c in batches)
    print(f"\n{total} candidates, {steps / total:.1f} steps each on average\n")
    print("| verifier | batched (candidates/s) | one by one (candidates/s) | speed-up |")
    print("|---|---|---|---|")
    makers = {
        "self_judge (policy on vLLM)": lambda: SelfJudgeVerifier(engine=engine),
        "step_judge (policy on vLLM)": lambda: StepJudgeVerifier(engine=engine),
        "orm (135M classifier, transformers)": lambda: OutcomeRewardModel(
            model=default_model_folder(), backend="transformers", max_batch=32
        ),
    }
    for name, make in makers.items():
        batched, single = await throughput(make, batches)
        print(f"| {name} | {batched:.1f} | {single:.1f} | {batched / single:.2f}x |")
    hits, asked, uncached = await beam_pattern(engine, batches)
    print(
        f"\nbeam-search pattern: {hits} of {asked} step scores from the cache "
        f"({hits / asked:.0%}); without the cache every depth re-judges its prefix "
        f"({uncached} judgements instead of {asked - hits})"
    )
    engine.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--problems", type=int, default=4)
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=96)
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
