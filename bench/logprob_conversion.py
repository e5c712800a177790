"""What does it cost the API process to take in a token's top log-probs, in vLLM's dict form and
in its flat form?

DeepConf streams 16 candidates with top-5 log-probs, and on a fast GPU the API process, not the
engine, bounded its speed (docs/results/heldout/). This times the part that depends on the
container: vLLM's own `append_logprobs_for_next_position` filling it as the output processor does,
the slice a streamed request gets every `--interval` tokens, and Ponder's `token_logprobs`
reading that slice. No engine runs; one run prints microseconds per token for both forms.

    .venv/bin/python bench/logprob_conversion.py [--top 5] [--tokens 128] [--interval 8]
"""

from __future__ import annotations

import argparse
import random
import time
import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from vllm.logprobs import append_logprobs_for_next_position, create_sample_logprobs
    from vllm.outputs import CompletionOutput

    from ponder.server.vllm_convert import token_logprobs


def one_sequence(steps: list, top: int, interval: int, flat: bool) -> None:
    container = create_sample_logprobs(flat)
    token_ids: list[int] = []
    for t, (ids, values, rank) in enumerate(steps, start=1):
        append_logprobs_for_next_position(container, ids, values, [None] * len(ids), rank, top)
        token_ids.append(ids[0])
        if t % interval == 0:
            chunk = CompletionOutput(
                index=0,
                text="",
                token_ids=token_ids[-interval:],
                cumulative_logprob=0.0,
                logprobs=container[-interval:],
            )
            token_logprobs(chunk)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--top", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--interval", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    rng = random.Random(0)
    steps = [
        (
            [rng.randrange(49_000) for _ in range(args.top + 1)],
            [rng.gauss(-2.0, 1.0) for _ in range(args.top + 1)],
            rng.randrange(1, 10),
        )
        for _ in range(args.tokens)
    ]
    print("| form | µs per token |\n|---|---|")
    for flat in (False, True, False, True):
        start = time.perf_counter()
        for _ in range(args.repeats):
            one_sequence(steps, args.top, args.interval, flat)
        per_token = (time.perf_counter() - start) / (args.repeats * args.tokens) * 1e6
        print(f"| {'flat' if flat else 'dict'} | {per_token:.2f} |")


if __name__ == "__main__":
    main()
