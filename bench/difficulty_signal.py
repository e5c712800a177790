"""How well does each probe signal predict a problem's difficulty on the embedded model?

For each calibration problem of `bench/compute_optimal.sh`, one request samples 8 answers (best-of-8
with the `confidence` verifier and a trace, so every sample's answer and confidence come back).
The pass rate over the 8 is the problem's measured difficulty; the first 4 play the probe. The
script prints the Pearson correlation of each 4-sample signal with 1 - pass rate:
`agreement` (the shipped estimator), `confidence` (one minus mean confidence) and mean length.

    .venv/bin/python bench/difficulty_signal.py
"""

from __future__ import annotations

import asyncio
import logging
import statistics

import httpx
from common import served

from ponder.core.answers import tally
from ponder.core.engine import GeneratedSequence
from ponder.evaluation.datasets import Problem, load_dataset
from ponder.server.settings import Settings
from ponder.strategies.difficulty import Probe, agreement

SETS = [
    f"rg:chain_sum?size=20&seed={seed}&min_terms={terms}&max_terms={terms}"
    f"&min_digits={digits}&max_digits={digits}"
    for seed, terms, digits in ((101, 2, 1), (102, 3, 1), (103, 2, 2))
]
SAMPLES, PROBE = 8, 4


async def sample(client: httpx.AsyncClient, model: str, problem: Problem) -> list[dict]:
    response = await client.post(
        "/v1/chat/completions",
        json={
            "model": model,
            "messages": [{"role": "user", "content": problem.question}],
            "max_completion_tokens": 64,
            "temperature": 0.8,
            "tts": {
                "strategy": "best_of_n",
                "n": SAMPLES,
                "verifier": "confidence",
                "return_trace": True,
            },
        },
    )
    response.raise_for_status()
    trace: list[dict] = response.json()["tts"]["trace"]
    return trace


async def main() -> None:
    problems = [p for spec in SETS for p in load_dataset(spec)]
    async with (
        served(Settings(port=8798)) as (engine, base),
        httpx.AsyncClient(base_url=base, timeout=600) as client,
    ):
        gate = asyncio.Semaphore(8)

        async def one(problem: Problem) -> list[dict]:
            async with gate:
                return await sample(client, engine.model_name, problem)

        traces = await asyncio.gather(*(one(p) for p in problems))
    difficulty, signals = [], {"agreement": [], "confidence": [], "length": []}
    for problem, trace in zip(problems, traces, strict=True):
        difficulty.append(1 - sum(problem.check(t["answer"]) for t in trace) / len(trace))
        probe = trace[:PROBE]
        votes = tally([t["answer"] for t in probe])
        sequences = tuple(GeneratedSequence(t["text"], (), "stop") for t in probe)
        signals["agreement"].append(agreement(Probe(sequences, votes)))
        signals["confidence"].append(1 - statistics.mean(t["score"] for t in probe))
        signals["length"].append(statistics.mean(t["tokens"] for t in probe))
    print(f"{len(problems)} problems, {SAMPLES} samples each, first {PROBE} as the probe")
    print("| signal | correlation with 1 - pass rate |")
    print("|---|---|")
    for name, values in signals.items():
        print(f"| {name} | {statistics.correlation(values, difficulty):.2f} |")


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(main())
