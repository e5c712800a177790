"""How late does a confidence stop reach the engine: aborted from this process, or ended inside the
engine by its logits processor (`server/vllm_confidence_stop.py`)?

DeepConf online stops a trace once the group confidence of its last `window` tokens falls below a
floor. Each candidate's first token below the floor is computed here from the log-probs the engine
reported (as the strategy computes it). Sent as an abort from the API process, the stop arrives
some tokens after that token: the tokens made past it are the lag. Ended in the engine, the trace
should end exactly there, with its end-of-sequence token. One run does both on the same problems
and seeds, `--concurrency` problems of `--n` candidates in flight (the load sets the abort's lag),
and prints the lag and how many engine stops fell exactly on the computed token.

    flock /tmp/ponder-engine.lock .venv/bin/python bench/confidence_stop.py [--problems 32]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import Sequence

from common import addition_problems, served

from ponder.core.confidence import RunningGroupConfidence
from ponder.core.engine import Engine, SamplingOptions, StreamDelta, TokenLogprob
from ponder.server.settings import Settings

TOP_K = 5
WINDOW = 16


def first_below(tokens: Sequence[TokenLogprob], floor: float) -> int | None:
    """The position of the first token whose group confidence is below `floor`."""
    group = RunningGroupConfidence(WINDOW, TOP_K)
    for position, token in enumerate(tokens):
        group.add([token])
        if group.lowest is not None and group.lowest < floor:
            return position
    return None


async def candidates(
    engine: Engine, prompt: list[int], options: SamplingOptions, n: int, rid: str, floor: float
) -> list[tuple[int, int | None]]:
    """(tokens made, first token below the floor) per candidate. With `options.confidence_window`
    the engine ends them; without, each is aborted from here once its tokens show it below."""
    groups = [RunningGroupConfidence(WINDOW, TOP_K) for _ in range(n)]
    tokens: list[list[TokenLogprob]] = [[] for _ in range(n)]
    stream = await engine.stream_candidates(prompt, options, n=n, request_id=rid)
    async with stream:
        await stream.stop_below(floor)
        async for delta in stream:
            if not isinstance(delta, StreamDelta):
                continue
            i = delta.index
            tokens[i].extend(delta.logprobs or ())
            groups[i].add(delta.logprobs or ())
            low = groups[i].lowest
            if delta.finish_reason is None and low is not None and low < floor:
                await stream.stop([i])
    return [(len(t), first_below(t, floor)) for t in tokens]


async def run(problems: int, n: int, concurrency: int, floor: float) -> None:
    prompts = addition_problems(problems, seed=11)
    async with served(Settings(port=0)) as (engine, _):
        gate = asyncio.Semaphore(concurrency)
        rendered = [engine.render_chat([{"role": "user", "content": p}]) for p in prompts]

        async def one(i: int, in_engine: bool) -> list[tuple[int, int | None]]:
            options = SamplingOptions(
                max_tokens=256,
                temperature=0.7,
                logprobs=TOP_K,
                logprob_texts=False,
                seed=1000 + i,
                confidence_window=WINDOW if in_engine else None,
            )
            async with gate:
                return await candidates(engine, rendered[i], options, n, f"p{i}-{in_engine}", floor)

        # The engine's first floor call takes seconds (vLLM sets up its RPC path); not measured.
        await one(0, True)
        print("| stopped by | candidates | stopped | tokens | tokens past the first below |")
        print("|---|---|---|---|---|")
        for in_engine in (False, True):
            results = await asyncio.gather(*(one(i, in_engine) for i in range(problems)))
            rows = [row for result in results for row in result]
            stopped = [(made, at) for made, at in rows if at is not None]
            past = [made - (at + 1) for made, at in stopped]
            label = "engine (logits processor)" if in_engine else "abort from the API process"
            print(
                f"| {label} | {len(rows)} | {len(stopped)} | {sum(m for m, _ in rows)} | "
                f"mean {sum(past) / max(len(past), 1):.2f}, exactly 0 for {past.count(0)} |",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=32)
    parser.add_argument("--n", type=int, default=16)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--floor", type=float, default=2.8)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(run(args.problems, args.n, args.concurrency, args.floor))


if __name__ == "__main__":
    main()
