"""Load: many concurrent mixed requests against a real `ponder serve`, and its memory around them.

Starts `ponder serve` (the embedded model unless `--model`), warms it up, records the server's
resident memory, then keeps `--concurrency` clients busy until `--requests` requests have been
answered, mixing strategies and streamed with plain requests, and records the memory again. It
prints throughput, latency percentiles of the answered requests, the outcome of every request by
status (connection errors included), and the memory of the API process and of its children (the
engine core). Not a test: figures depend on the machine; the README records them.

    .venv/bin/python bench/load.py [--concurrency 64] [--requests 300] [--max-tokens 32]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

# (strategy, tts) mixed round-robin; every other request is streamed.
MIX: list[dict[str, Any]] = [
    {"strategy": "none"},
    {"strategy": "best_of_n", "n": 4, "verifier": "confidence"},
    {"strategy": "self_consistency", "n": 4},
    {"strategy": "beam_search", "beam_width": 2},
    {"strategy": "tree_of_thoughts", "breadth": 2, "proposals": 2, "max_steps": 2,
     "verifier": "arithmetic"},
    {"strategy": "self_refine", "max_rounds": 1, "verifier": "arithmetic"},
]  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rss_mib(pid: int) -> tuple[float, float]:
    """Resident memory of the process, and of all its descendants, in MiB."""
    process = psutil.Process(pid)
    own = process.memory_info().rss
    children = sum(c.memory_info().rss for c in process.children(recursive=True))
    return own / 2**20, children / 2**20


def _request(i: int, model: str, max_tokens: int) -> tuple[str, dict[str, Any]]:
    tts = MIX[i % len(MIX)]
    body = {
        "model": model,
        "messages": [{"role": "user", "content": f"What is {i % 90 + 10} + 17? Think briefly."}],
        "max_completion_tokens": max_tokens,
        "stream": i % 2 == 1,
        "tts": tts,
    }
    return f"{tts['strategy']}{'/stream' if body['stream'] else ''}", body


async def _one(client: httpx.AsyncClient, body: dict[str, Any]) -> tuple[str, float]:
    """The outcome ('200', '429', ..., or the exception's name) and the seconds it took."""
    started = time.perf_counter()
    try:
        if body["stream"]:
            async with client.stream("POST", "/v1/chat/completions", json=body) as response:
                text = "".join([chunk async for chunk in response.aiter_text()])
                outcome = str(response.status_code)
                if response.status_code == 200 and ('"error"' in text or "[DONE]" not in text):
                    outcome = "200-with-error-event"
        else:
            response = await client.post("/v1/chat/completions", json=body)
            outcome = str(response.status_code)
    except httpx.HTTPError as exc:
        outcome = type(exc).__name__
    return outcome, time.perf_counter() - started


async def _load(
    base_url: str, model: str, concurrency: int, total: int, max_tokens: int, offset: int
) -> tuple[collections.Counter[str], list[float], float]:
    outcomes: collections.Counter[str] = collections.Counter()
    latencies: list[float] = []
    counter = iter(range(offset, offset + total))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async def client_loop(client: httpx.AsyncClient) -> None:
        for i in counter:
            _kind, body = _request(i, model, max_tokens)
            outcome, seconds = await _one(client, body)
            outcomes[outcome] += 1
            if outcome == "200":
                latencies.append(seconds)

    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=base_url, timeout=600, limits=limits) as client:
        await asyncio.gather(*(client_loop(client) for _ in range(concurrency)))
    return outcomes, latencies, time.perf_counter() - started


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=24)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--model", default=None, help="Local model folder; default: embedded.")
    parser.add_argument("--json", type=Path, default=None, help="Also write the figures here.")
    args = parser.parse_args()

    port = _free_port()
    command = [sys.executable, "-m", "ponder.server.cli", "serve", "--port", str(port)]
    if args.model:
        command += ["--model", args.model]
    log = open(os.devnull, "wb")  # noqa: SIM115 - lives as long as the server
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}"
    try:
        while True:
            if server.poll() is not None:
                raise SystemExit("the server exited at start-up")
            try:
                if httpx.get(f"{base_url}/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(1)
        model = httpx.get(f"{base_url}/v1/models").json()["data"][0]["id"]
        asyncio.run(_load(base_url, model, 8, args.warmup, args.max_tokens, 0))
        before = _rss_mib(server.pid)
        outcomes, latencies, seconds = asyncio.run(
            _load(base_url, model, args.concurrency, args.requests, args.max_tokens, args.warmup)
        )
        after = _rss_mib(server.pid)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
    figures = {
        "concurrency": args.concurrency,
        "requests": args.requests,
        "max_tokens": args.max_tokens,
        "seconds": round(seconds, 1),
        "answered_per_s": round(len(latencies) / seconds, 2),
        "latency_s": {
            "p50": round(_percentile(latencies, 50), 2),
            "p95": round(_percentile(latencies, 95), 2),
            "p99": round(_percentile(latencies, 99), 2),
        },
        "outcomes": dict(sorted(outcomes.items())),
        "api_rss_mib": {"before": round(before[0]), "after": round(after[0])},
        "api_rss_growth_mib": round(after[0] - before[0], 1),
        "children_rss_mib": {"before": round(before[1]), "after": round(after[1])},
    }
    text = json.dumps(figures, indent=2)
    sys.stdout.write(text + "\n")
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
