"""The remote engine against the in-process engine, and two vLLM servers against one.

Part 1, one server: Ponder on its in-process vLLM engine and Ponder on the remote engine over one
`vllm serve` (same machine, model and flags) run the same requests, alternating problem by problem
so drift on a shared machine hits both alike: best-of-8 (confidence), self-consistency@8, and a
step-level PRM beam search (arithmetic step verifier). Generations use `ignore_eos` with a fixed
length where the strategy allows, so both sides generate the same number of tokens. Printed: wall
time per strategy and the ratio remote / in-process, and the step search's prefix-cache hit rate
(cached prompt tokens over prompt tokens, from each response's usage).

Part 2, concurrent load: `--concurrency` self-consistency@8 requests at once through the remote
engine over one server, then over two. Printed: throughput ratio, and the share of requests whose
engine calls all landed on one server.

Both sides of part 1 run with the same CPU thread binding (`--bind`, vLLM's
`VLLM_CPU_OMP_THREADS_BIND`): vLLM's default, `auto`, keeps one core for the server process and
binds the engine's threads to the rest, while `nobind` leaves placement to the OS. In part 2 each
server's engine threads are bound to a core of their own (0 and 1), as replicas on separate
hardware would be: two CPU servers that each auto-bind pin their threads to the same core, and two
that do not bind (two threads each on two cores) slowed to about 13 tokens/s each in a first run.

    .venv/bin/python bench/remote.py [--problems 10] [--max-tokens 64] [--concurrency 16]
        [--bind auto|nobind] [--part 1|2] [--gpu-share 0.4]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
from common import addition_problems, exit_on_sigterm, served, share_gpu

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.integration helpers

from ponder.server.model_store import prepare_default_model
from ponder.server.settings import Settings
from tests.integration.remote_servers import VLLMServer

NAME = "smollm2-135m-instruct"
STEP = {"max_steps": 4, "step_tokens": 32, "verifier": "arithmetic", "aggregation": "last"}
WORKLOADS: dict[str, dict[str, Any]] = {
    "best_of_n@8 (confidence)": {"strategy": "best_of_n", "n": 8, "verifier": "confidence"},
    "self_consistency@8": {"strategy": "self_consistency", "n": 8},
    "prm_beam_search (8/2, arithmetic)": {
        "strategy": "prm_beam_search",
        "n": 8,
        "beam_width": 2,
        **STEP,
    },
}


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _body(question: str, tts: dict[str, Any], max_tokens: int) -> dict[str, Any]:
    step_search = tts["strategy"] == "prm_beam_search"
    return {
        "model": NAME,
        "messages": [{"role": "user", "content": question + " Think step by step."}],
        "max_completion_tokens": max_tokens * (4 if step_search else 1),
        "temperature": 0.8,
        # A step search ends steps at delimiters; the sampling strategies generate a fixed length.
        "ignore_eos": not step_search,
        "tts": tts,
    }


async def _timed(client: httpx.AsyncClient, body: dict[str, Any]) -> tuple[float, dict[str, Any]]:
    t0 = time.perf_counter()
    response = await client.post("/v1/chat/completions", json=body)
    seconds = time.perf_counter() - t0
    response.raise_for_status()
    return seconds, response.json()


def _remote_settings(servers: list[VLLMServer], model: Path) -> Settings:
    return Settings(
        port=0,
        engine="remote",
        engine_urls=[s.url for s in servers],
        tokenizer=model,
        served_model_name=NAME,
        max_concurrent_requests=64,
        max_queued_requests=256,
    )


async def one_server(args: argparse.Namespace, model: Path, server: VLLMServer) -> None:
    local = Settings(port=0, max_model_len=2048, served_model_name=NAME)
    async with (
        served(local) as (_, local_url),
        served(_remote_settings([server], model)) as (_, remote_url),
        httpx.AsyncClient(base_url=local_url, timeout=900) as in_process,
        httpx.AsyncClient(base_url=remote_url, timeout=900) as remote,
    ):
        print("\n| strategy | in-process s | remote s | remote / in-process | tokens (in/remote) |")
        print("|---|---|---|---|---|")
        hits: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for name, tts in WORKLOADS.items():
            seconds = {"in": 0.0, "remote": 0.0}
            tokens = {"in": 0, "remote": 0}
            for question in addition_problems(args.problems, seed=3):
                body = _body(question, tts, args.max_tokens)
                for side, client in (("in", in_process), ("remote", remote)):
                    spent, data = await _timed(client, body)
                    seconds[side] += spent
                    usage = data["usage"]
                    tokens[side] += usage["completion_tokens"]
                    if tts["strategy"] == "prm_beam_search":
                        hits[side][0] += usage["prompt_tokens_details"]["cached_tokens"]
                        hits[side][1] += usage["prompt_tokens"]
            ratio = seconds["remote"] / seconds["in"]
            print(
                f"| {name} | {seconds['in']:.1f} | {seconds['remote']:.1f} | {ratio:.3f} | "
                f"{tokens['in']}/{tokens['remote']} |"
            )
        rate = {side: cached / max(prompt, 1) for side, (cached, prompt) in hits.items()}
        print(
            f"\nstep search prefix-cache hits: in-process {rate['in']:.1%}, remote "
            f"{rate['remote']:.1%} (remote keeps {rate['remote'] / max(rate['in'], 1e-9):.0%})"
        )


async def under_load(args: argparse.Namespace, model: Path, servers: list[VLLMServer]) -> None:
    questions = addition_problems(args.concurrency, seed=5)
    results = {}
    for count in (1, 2):
        async with (
            served(_remote_settings(servers[:count], model)) as (engine, url),
            httpx.AsyncClient(base_url=url, timeout=900) as client,
        ):
            landed: dict[str, set[int]] = defaultdict(set)
            pool = engine.pool  # type: ignore[attr-defined]
            pick = pool.pick

            def recording(call_id: str, prompt: Any, pick: Any = pick, landed: Any = landed) -> Any:
                from ponder.server.routing import affinity_key

                chosen = pick(call_id, prompt)
                landed[affinity_key(call_id)].add(chosen.index)
                return chosen

            pool.pick = recording
            tts = {"strategy": "best_of_n", "n": 8, "verifier": "self_judge"}
            bodies = [_body(q, tts, args.max_tokens) for q in questions]
            t0 = time.perf_counter()
            await asyncio.gather(*(_timed(client, b) for b in bodies))
            seconds = time.perf_counter() - t0
            one = sum(len(s) == 1 for s in landed.values()) / max(len(landed), 1)
            spread = [sum(i in s for s in landed.values()) for i in range(count)]
            results[count] = seconds
            print(
                f"{count} server(s): {len(bodies)} concurrent best_of_n@8 (self_judge) in "
                f"{seconds:.1f} s ({len(bodies) / seconds:.2f} req/s); requests per server "
                f"{spread}; requests whose engine calls all hit one server: {one:.0%}"
            )
    print(f"throughput 2 servers / 1 server: {results[1] / results[2]:.2f}x")


async def run(args: argparse.Namespace) -> None:
    model = prepare_default_model()
    logs = Path(tempfile.mkdtemp(prefix="ponder-bench-remote-"))
    # The in-process engine of part 1 reads the binding from this process's environment.
    os.environ["VLLM_CPU_OMP_THREADS_BIND"] = args.bind
    share_gpu(args.gpu_share)
    binds = [args.bind, args.bind] if args.part == 1 else [str(i) for i in range(2)]
    servers = [
        VLLMServer(
            model,
            NAME,
            _port(),
            logs / f"vllm{i}.log",
            env={"VLLM_CPU_OMP_THREADS_BIND": bind},
            gpu_memory_utilization=args.gpu_share,
        )
        for i, bind in enumerate(binds)
    ]
    try:
        for server in servers[: args.part]:
            server.start()
        for server in servers[: args.part]:
            server.wait_ready()
        if args.part == 1:
            print(f"VLLM_CPU_OMP_THREADS_BIND={args.bind} on both sides")
            await one_server(args, model, servers[0])
        else:
            await under_load(args, model, servers)
    finally:
        for server in servers:
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--problems", type=int, default=10)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--bind", choices=["auto", "nobind"], default="auto")
    parser.add_argument("--part", type=int, choices=[1, 2], default=1)
    parser.add_argument(
        "--gpu-share", type=float, help="on a GPU: each engine's memory share (both run eager)"
    )
    exit_on_sigterm()
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
