"""How close does weighted best-of-8 with the `arithmetic` verifier come to the any-of-8 ceiling?

Two steps, so that verifier versions are compared on the very same samples:

1. `sample` (starts an engine: run it under the engine lock) sends each held-out problem once as
   best-of-8 with the `arithmetic` verifier, weighted, with a trace, and writes every sample's
   text and answer, the server's pick and the tokens to a JSONL file.
2. `score` (no engine) scores each problem's 8 samples again with the `arithmetic` verifier of
   the code on PYTHONPATH and picks as weighted best-of-N does (the heaviest answer by summed
   score), then prints accuracy and the any-of-8 ceiling per task with Wilson 95 % intervals.
   Pointing PYTHONPATH at an older checkout scores the same samples with that version.

    .venv/bin/python bench/arithmetic_verifier.py sample --output samples.jsonl
    .venv/bin/python bench/arithmetic_verifier.py score samples.jsonl [--aggregation last]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import time
from collections import defaultdict
from pathlib import Path

import httpx
from common import served

from ponder.core.answers import extract_answer, tally
from ponder.evaluation.datasets import Problem, load_dataset
from ponder.evaluation.statistics import wilson_interval
from ponder.server.settings import Settings
from ponder.verifiers.arithmetic import ArithmeticVerifier
from ponder.verifiers.base import Aggregation, Candidate, Question

# Held out: the compute-optimal calibration used seeds 101-103 and its held-out set 201-203.
SETS = {
    "chain_sum": "rg:chain_sum?size=60&seed=301&min_terms=2&max_terms=3&min_digits=1&max_digits=2",
    "basic_arithmetic": (
        "rg:basic_arithmetic?size=60&seed=302&min_terms=2&max_terms=3&min_digits=1&max_digits=2"
    ),
}
SAMPLES, MAX_TOKENS, TEMPERATURE = 8, 256, 0.7


def problems(sets: dict[str, str] | None = None) -> list[tuple[str, Problem]]:
    return [(task, p) for task, spec in (sets or SETS).items() for p in load_dataset(spec)]


def parse_sets(values: list[str] | None) -> dict[str, str] | None:
    """`TASK=SPEC` pairs (a JSONL file or a reasoning-gym spec) in place of SETS."""
    if not values:
        return None
    return dict(v.split("=", 1) for v in values)


async def sample(
    output: Path, limit: int | None, sets: dict[str, str] | None, concurrency: int
) -> None:
    """Sample the problems not yet in `output` (a run cut short by its time limit resumes)."""
    done = set()
    if output.exists():
        done = {json.loads(line)["id"] for line in output.read_text().splitlines()}
    chosen = [(t, p) for t, p in problems(sets) if p.id not in done]
    if limit is not None:
        chosen = [(t, p) for t, p in chosen if int(p.id.rsplit("-", 1)[1]) < limit]
    async with (
        served(Settings(port=0)) as (engine, base),
        httpx.AsyncClient(base_url=base, timeout=600) as client,
    ):
        # One request at a time by default, as the measurements were made.
        gate = asyncio.Semaphore(concurrency)
        with output.open("a") as out:

            async def one(task: str, problem: Problem) -> None:
                async with gate:
                    started = time.perf_counter()
                    response = await client.post(
                        "/v1/chat/completions",
                        json={
                            "model": engine.model_name,
                            "messages": [{"role": "user", "content": problem.question}],
                            "max_completion_tokens": MAX_TOKENS,
                            "temperature": TEMPERATURE,
                            "tts": {
                                "strategy": "best_of_n",
                                "n": SAMPLES,
                                "verifier": "arithmetic",
                                "weighted": True,
                                "return_trace": True,
                            },
                        },
                    )
                response.raise_for_status()
                body = response.json()
                row = {
                    "task": task,
                    "id": problem.id,
                    "picked": extract_answer(body["choices"][0]["message"]["content"]),
                    "completion_tokens": body["usage"]["completion_tokens"],
                    "seconds": time.perf_counter() - started,
                    "samples": [t["text"] for t in body["tts"]["trace"]],
                }
                out.write(json.dumps(row) + "\n")
                out.flush()

            await asyncio.gather(*(one(t, p) for t, p in chosen))


async def score(path: Path, aggregation: Aggregation, sets: dict[str, str] | None) -> None:
    by_id = {p.id: (task, p) for task, p in problems(sets)}
    verifier = ArithmeticVerifier(aggregation=aggregation)
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    tokens: dict[str, list[float]] = defaultdict(list)
    for line in path.read_text().splitlines():
        row = json.loads(line)
        task, problem = by_id[row["id"]]
        texts = row["samples"]
        question = Question(({"role": "user", "content": problem.question},))
        scores = await verifier.score(question, [Candidate(t) for t in texts], request_id="b")
        answers = [extract_answer(t) for t in texts]
        votes = tally(answers, list(scores.values))
        pick = None if votes.winner is None else answers[votes.groups.index(votes.winner)]
        right = [problem.check(a) for a in answers]
        c = counts[task]
        c["problems"] += 1
        c["best_of_8"] += problem.check(pick)
        c["server_pick"] += problem.check(row["picked"])
        c["any_of_8"] += any(right)
        c["majority"] += problem.check(_majority(answers))
        tokens[task].append(row["completion_tokens"])
    print("| task | problems | weighted best-of-8 | any of 8 (ceiling) | majority of 8 | tokens |")
    print("|---|---|---|---|---|---|")
    for task, c in counts.items():
        n = c["problems"]
        cells = []
        for key in ("best_of_8", "any_of_8", "majority"):
            low, high = wilson_interval(c[key], n)
            cells.append(f"{c[key] / n:.1%} [{low:.0%}, {high:.0%}]")
        mean_tokens = sum(tokens[task]) / n
        print(f"| {task} | {n} | {' | '.join(cells)} | {mean_tokens:.0f} |")
    for task, c in counts.items():
        print(f"{task}: the server's own pick was right on {c['server_pick']} of {c['problems']}")


def _majority(answers: list[str | None]) -> str | None:
    votes = tally(answers)
    return None if votes.winner is None else answers[votes.groups.index(votes.winner)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    sampling = commands.add_parser("sample")
    sampling.add_argument("--output", type=Path, required=True)
    sampling.add_argument("--limit", type=int, help="First N problems of each task.")
    sampling.add_argument("--concurrency", type=int, default=1, help="Requests at once.")
    for command in (sampling, scoring := commands.add_parser("score")):
        command.add_argument(
            "--dataset",
            action="append",
            metavar="TASK=SPEC",
            help="A task's problems (JSONL file or rg: spec) in place of the built-in sets.",
        )
    scoring.add_argument("samples", type=Path)
    scoring.add_argument(
        "--aggregation",
        default="min",
        choices=["min", "last"],
        help="min (the default): every step's arithmetic and the final answer; last: the "
        "final answer alone.",
    )
    args = parser.parse_args()
    if args.command == "sample":
        asyncio.run(sample(args.output, args.limit, parse_sets(args.dataset), args.concurrency))
    else:
        asyncio.run(score(args.samples, args.aggregation, parse_sets(args.dataset)))


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    main()
