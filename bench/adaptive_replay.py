"""Tune the adaptive methods' stopping rules on recorded samples, not on the held-out set.

Adaptive self-consistency and DeepConf online start all N samples together and stop some of them
while they are generated. In one engine batch the samples advance a token per step together, so
a sample of L tokens finishes at step L and a rule that stops the rest at step t costs the sum
of min(L, t) over the samples. Given 16 recorded samples per problem (their answers, lengths and
per-token confidences), every setting of a rule can be replayed in milliseconds with the
strategies' own decision functions, where measuring each on the engine takes minutes.

1. `sample` (starts an engine: run it under the engine lock) draws 16 samples of each tuning
   problem (reasoning-gym chain_sum and basic_arithmetic at the policy calibration's difficulty,
   six seeds from `--seed`, 2901-2906 by default, used by no calibration or held-out set), 256
   tokens, temperature 0.7, top-5 log-probs, and writes one JSON line per problem.
2. `replay` prints accuracy (Wilson 95 %) and tokens per problem of self-consistency@4/8/16 and
   of each rule setting, as a share of self-consistency@16's tokens.

    flock /tmp/ponder-engine.lock .venv/bin/python bench/adaptive_replay.py sample samples.jsonl
    .venv/bin/python bench/adaptive_replay.py replay samples.jsonl [more.jsonl ...]

The samples behind docs/results/adaptive/tuning.md are kept there (`samples.jsonl.gz`, seeds
2901-2906, and `samples-2911.jsonl.gz`, seeds 2911-2916; `replay` reads them as they are).
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import logging
import sys
from collections.abc import Callable, Sequence
from itertools import accumulate
from pathlib import Path

from common import served

from ponder.core.answers import exact_totals, extract_answer, tally
from ponder.core.confidence import token_confidence, window_means
from ponder.core.engine import SamplingOptions
from ponder.evaluation.datasets import Problem, load_dataset
from ponder.evaluation.statistics import wilson_interval
from ponder.server.settings import Settings
from ponder.strategies.deepconf import consensus_reached, quantile
from ponder.strategies.self_consistency import vote_decided

SHAPES = ((2, 1), (3, 1), (2, 2))  # (terms, digits): the calibration's three kinds of problem
SAMPLES, MAX_TOKENS, TEMPERATURE, TOP_LOGPROBS = 16, 256, 0.7, 5


def tuning_sets(per_shape: int, seed: int = 2901) -> list[str]:
    sets = []
    for task, base in (("chain_sum", seed), ("basic_arithmetic", seed + len(SHAPES))):
        for offset, (terms, digits) in enumerate(SHAPES):
            sets.append(
                f"rg:{task}?size={per_shape}&seed={base + offset}&min_terms={terms}"
                f"&max_terms={terms}&min_digits={digits}&max_digits={digits}"
            )
    return sets


async def sample(output: Path, per_shape: int, concurrency: int, seed: int) -> None:
    problems = [p for spec in tuning_sets(per_shape, seed) for p in load_dataset(spec)]
    options = SamplingOptions(
        max_tokens=MAX_TOKENS,
        temperature=TEMPERATURE,
        logprobs=TOP_LOGPROBS,
        logprob_texts=False,
    )
    async with served(Settings(port=0)) as (engine, _):
        gate = asyncio.Semaphore(concurrency)

        async def one(i: int, problem: Problem) -> dict:
            prompt = engine.render_chat([{"role": "user", "content": problem.question}])
            async with gate:
                generation = (
                    await engine.generate([prompt], options, n=SAMPLES, request_id=f"tune-{i}")
                )[0]
            samples = []
            for s in generation.sequences:
                answer = extract_answer(s.text)
                samples.append(
                    {
                        "tokens": s.num_tokens,
                        "answer": answer,
                        "correct": await asyncio.to_thread(problem.check, answer),
                        # DeepConf's reading, the top k alone (sample files before 2026-11-27
                        # also averaged in a sampled token outside the top k).
                        "confidence": [
                            round(token_confidence(t, TOP_LOGPROBS), 4) for t in s.logprobs or ()
                        ],
                    }
                )
            return {"id": problem.id, "expected": problem.answer, "samples": samples}

        rows = await asyncio.gather(*(one(i, p) for i, p in enumerate(problems)))
    output.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


# A replayed request: which samples voted (None: stopped) and the tokens it cost.
Outcome = tuple[list[str | None], int]


def _majority_correct(row: dict, answers: Sequence[str | None], weights=None) -> bool:
    votes = tally(list(answers), weights)
    ranking = votes.rank_representatives()
    if not ranking or answers[ranking[0]] is None:
        return False
    return bool(row["samples"][ranking[0]]["correct"])


def fixed(row: dict, n: int) -> Outcome:
    samples = row["samples"][:n]
    return [s["answer"] for s in samples], sum(s["tokens"] for s in samples)


def adaptive(row: dict, min_samples: int, threshold: float, lag: int = 0) -> Outcome:
    """`SelfConsistency._adaptive` in lockstep: samples finish in order of length; a stopped
    sample still makes `lag` tokens (the engine gets the abort some steps later)."""
    samples = row["samples"]
    order = sorted(range(len(samples)), key=lambda i: samples[i]["tokens"])
    answers: list[str | None] = [None] * len(samples)
    finished: list[str | None] = []
    for k, i in enumerate(order):
        answers[i] = samples[i]["answer"]
        finished.append(samples[i]["answer"])
        running = len(samples) - k - 1
        counts = exact_totals(finished)
        if running and vote_decided(
            counts,
            finished=len(finished),
            running=running,
            min_samples=min_samples,
            threshold=threshold,
        ):
            stop = samples[i]["tokens"] + lag
            return answers, sum(min(s["tokens"], stop) for s in samples)
    return answers, sum(s["tokens"] for s in samples)


def _running_lowest(values: Sequence[float], window: int) -> list[float | None]:
    """After each token, the lowest group confidence so far (None before a whole window), as
    `RunningGroupConfidence.lowest` reads it while the trace is generated."""
    if len(values) < window:
        return [None] * len(values)
    return [*([None] * (window - 1)), *accumulate(window_means(values, window), min)]


def _lowest(values: Sequence[float], window: int) -> float:
    """The whole trace's lowest group confidence (one group for a short trace)."""
    return min(window_means(values, window), default=0.0)


def deepconf_online(
    row: dict, keep: float, warmup: int, consensus: float, window: int = 32, lag: int = 0
) -> tuple[list[str | None], list[float], int]:
    """`DeepConf._online` in lockstep: the first `warmup` to finish set the threshold; from then
    on a trace stops at the first step its lowest group confidence is below it; once the
    weighted vote of the finished traces above it reaches `consensus`, the rest stop. A stopped
    trace still makes `lag` tokens, counted but never voted."""
    samples = row["samples"]
    count = len(samples)
    lengths = [s["tokens"] for s in samples]
    running = [_running_lowest(s["confidence"], window) for s in samples]
    lowest = [_lowest(s["confidence"], window) for s in samples]
    end = list(lengths)  # where each trace ends: its length, or the step it is stopped at
    live = set(range(count))
    finished: list[int] = []
    threshold: float | None = None

    def below(j: int, step: int) -> bool:
        value = running[j][step - 1] if step <= lengths[j] else None
        return threshold is not None and value is not None and value < threshold

    for step in range(1, max(lengths, default=0) + 1):
        for j in [j for j in live if lengths[j] > step and below(j, step)]:
            live.discard(j)
            end[j] = min(step + lag, lengths[j])
        for i in [i for i in live if lengths[i] == step]:
            live.discard(i)
            finished.append(i)
            if threshold is None and len(finished) >= warmup:
                threshold = quantile([lowest[j] for j in finished], 1.0 - keep)
                for j in [j for j in live if lengths[j] > step and below(j, step)]:
                    live.discard(j)
                    end[j] = min(step + lag, lengths[j])
            if threshold is None or not live:
                continue
            kept = [k for k in finished if lowest[k] >= threshold]
            answers = [samples[k]["answer"] for k in kept]
            if consensus_reached(answers, [lowest[k] for k in kept], consensus):
                for j in live:
                    end[j] = min(step + lag, lengths[j])
                live.clear()
    voting = set(finished) if threshold is None else {i for i in finished if lowest[i] >= threshold}
    answers = [samples[i]["answer"] if i in voting else None for i in range(count)]
    weights = [max(w, 0.0) for w in lowest]
    return answers, weights, sum(end)


def _read(path: Path) -> list[dict]:
    text = gzip.decompress(path.read_bytes()).decode() if path.suffix == ".gz" else path.read_text()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def replay(paths: Sequence[Path], lag: int) -> None:
    rows = [row for path in paths for row in _read(path)]
    base_tokens = sum(fixed(r, 16)[1] for r in rows) / len(rows)

    def line(name: str, run: Callable[[dict], tuple[bool, int]]) -> None:
        results = [run(r) for r in rows]
        correct = sum(c for c, _ in results)
        low, high = wilson_interval(correct, len(rows))
        tokens = sum(t for _, t in results) / len(rows)
        print(
            f"| {name} | {correct / len(rows):.1%} ({low:.0%}-{high:.0%}) | {tokens:.0f} | "
            f"{tokens / base_tokens:.2f} |"
        )

    def voted(outcome: Outcome, row: dict) -> tuple[bool, int]:
        answers, tokens = outcome
        return _majority_correct(row, answers), tokens

    print(f"{len(rows)} problems, {SAMPLES} samples each\n")
    print("| configuration | accuracy | tokens/problem | share of sc@16 |\n|---|---|---|---|")
    any8 = sum(any(s["correct"] for s in r["samples"][:8]) for r in rows)
    print(f"| any of 8 correct | {any8 / len(rows):.1%} | | |")
    for n in (4, 8, 16):
        line(f"self_consistency@{n}", lambda r, n=n: voted(fixed(r, n), r))
    for min_samples in (2, 4):
        for threshold in (0.6, 0.7, 0.8, 0.9, 0.95, 1.0):
            line(
                f"adaptive min {min_samples} threshold {threshold}",
                lambda r, m=min_samples, t=threshold: voted(adaptive(r, m, t, lag), r),
            )
    for keep in (0.9, 0.5, 0.1):
        for warmup in (3, 4, 6):
            for consensus in (0.6, 0.8, 0.95, 1.0):

                def run(r: dict, k=keep, w=warmup, c=consensus) -> tuple[bool, int]:
                    answers, weights, tokens = deepconf_online(r, k, w, c, lag=lag)
                    return _majority_correct(r, answers, weights), tokens

                line(f"deepconf keep {keep} warmup {warmup} consensus {consensus}", run)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("sample")
    s.add_argument("output", type=Path)
    s.add_argument("--per-shape", type=int, default=20)
    s.add_argument("--concurrency", type=int, default=8)
    s.add_argument("--seed", type=int, default=2901, help="the first of six consecutive seeds")
    r = sub.add_parser("replay")
    r.add_argument("samples", type=Path, nargs="+", help="sample files, replayed together")
    r.add_argument(
        "--stop-lag",
        type=int,
        default=0,
        help="tokens a stopped sample still makes after the decision (counted, never voted)",
    )
    args = parser.parse_args()
    if args.command == "sample":
        asyncio.run(sample(args.output, args.per_shape, args.concurrency, args.seed))
    else:
        replay(args.samples, args.stop_lag)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    main()
