"""`ponder eval`'s engine room: every (problem, configuration) pair sent to a Ponder server.

A configuration is a labelled `tts` object and an optional token budget. Requests run
concurrently up to a limit, a full server's 429 is waited out as its Retry-After says, and every
answer is checked off the event loop. Each pair becomes one result row; a failed request is a row
with its error, counted wrong, so a summary never silently drops a problem.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from ponder.core.answers import extract_answer

from .datasets import Problem

__all__ = [
    "EvalConfig",
    "EvalSettings",
    "parse_config",
    "read_results",
    "run_eval",
    "write_results",
]

logger = logging.getLogger(__name__)

_RETRIES_ON_429 = 20


@dataclass(frozen=True)
class EvalConfig:
    """One way to answer every problem: a label, the request's `tts` object, a token budget."""

    label: str
    tts: dict[str, Any]
    budget: int | None = None
    # OpenAI's `reasoning_effort`: the server's preset picks strategy and temperature.
    reasoning_effort: str | None = None

    @property
    def key(self) -> str:
        return self.label if self.budget is None else f"{self.label} [{self.budget}]"

    @property
    def line(self) -> str:
        """The plot line this configuration is a point of: the label up to any `@`."""
        return self.label.partition("@")[0]


def parse_config(text: str) -> EvalConfig:
    """`LABEL=JSON`, e.g. `sc@8={"strategy": "self_consistency", "n": 8}`."""
    label, sep, spec = text.partition("=")
    if not sep or not label.strip():
        raise ValueError(f"expected LABEL=JSON, got {text!r}")
    try:
        tts = json.loads(spec)
    except json.JSONDecodeError as exc:
        raise ValueError(f"the tts object of {label!r} is not JSON: {exc.msg}") from None
    if not isinstance(tts, dict):
        raise ValueError(f"the tts object of {label!r} must be a JSON object")
    return EvalConfig(label.strip(), tts)


@dataclass(frozen=True)
class EvalSettings:
    """How every request is made (the same for all configurations, so they compare fairly)."""

    base_url: str
    model: str | None = None
    api_key: str | None = None
    concurrency: int = 4
    max_tokens: int = 256
    temperature: float = 0.8
    instruction: str = ""
    system: str | None = None
    timeout_s: float = 900.0
    # Each configuration answers every problem once per seed (the request's `seed`); None
    # leaves sampling unseeded.
    seeds: tuple[int | None, ...] = (None,)
    extra_body: dict[str, Any] = field(default_factory=dict)


def _messages(problem: Problem, s: EvalSettings) -> list[dict[str, str]]:
    content = f"{problem.question}{s.instruction}"
    system = [{"role": "system", "content": s.system}] if s.system else []
    return [*system, {"role": "user", "content": content}]


def _body(
    problem: Problem, config: EvalConfig, model: str, s: EvalSettings, seed: int | None = None
) -> dict[str, Any]:
    tts = dict(config.tts)
    if config.budget is not None:
        tts["budget"] = {**tts.get("budget", {}), "max_tokens": config.budget}
    greedy = tts.get("strategy", "none") in ("none", "beam_search")
    body: dict[str, Any] = {
        "model": model,
        "messages": _messages(problem, s),
        "max_completion_tokens": s.max_tokens,
        "temperature": 0.0 if greedy else s.temperature,
        **({} if seed is None else {"seed": seed}),
        **s.extra_body,
        "tts": tts,
    }
    if config.reasoning_effort is not None:
        # Standard fields only, as any OpenAI client sends them: the preset decides the rest.
        body["reasoning_effort"] = config.reasoning_effort
        del body["temperature"]
        if not config.tts and config.budget is None:
            del body["tts"]
    return body


async def _post(client: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    for _ in range(_RETRIES_ON_429):
        response = await client.post("/v1/chat/completions", json=body)
        if response.status_code != 429:
            break
        await asyncio.sleep(float(response.headers.get("retry-after", "1")))
    if response.status_code != 200:
        try:
            message = response.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = response.text[:200]
        raise RuntimeError(f"HTTP {response.status_code}: {message}")
    data: dict[str, Any] = response.json()
    return data


async def _one(
    client: httpx.AsyncClient,
    problem: Problem,
    config: EvalConfig,
    model: str,
    s: EvalSettings,
    seed: int | None = None,
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "problem_id": problem.id,
        "seed": seed,
        "config": config.key,
        "label": config.label,
        "line": config.line,
        "budget": config.budget,
        "tts": config.tts,
        "reasoning_effort": config.reasoning_effort,
        "expected": problem.answer,
        "problem_difficulty": problem.difficulty,
    }
    started = time.perf_counter()
    try:
        data = await _post(client, _body(problem, config, model, s, seed))
    except (httpx.HTTPError, RuntimeError) as exc:
        row.update(answer=None, correct=False, generated_tokens=0, verifier_tokens=0)
        row.update(wall_s=time.perf_counter() - started, error=str(exc) or type(exc).__name__)
        return row
    wall = time.perf_counter() - started
    text = data["choices"][0]["message"]["content"] or ""
    answer = extract_answer(text)
    tts = data.get("tts", {})
    difficulty = tts.get("difficulty") or {}
    trace = tts.get("trace")
    if trace:
        # The ceiling a selection among these candidates could reach (its "oracle" accuracy):
        # whether any candidate's answer is right. Stopped candidates carry no answer.
        candidates = [c.get("answer") for c in trace if c.get("answer") is not None]
        row["any_correct"] = await asyncio.to_thread(_any_correct, problem, candidates)
    row.update(
        answer=answer,
        correct=await asyncio.to_thread(problem.check, answer),
        generated_tokens=data["usage"]["completion_tokens"],
        verifier_tokens=tts.get("verifier_tokens", 0),
        wall_s=wall,
        difficulty=difficulty.get("estimate"),
        difficulty_bin=difficulty.get("bin"),
        chosen_strategy=tts.get("chosen_strategy"),
        error=None,
    )
    return row


def _any_correct(problem: Problem, answers: Sequence[str]) -> bool:
    return any(problem.check(a) for a in dict.fromkeys(answers))


async def _served_model(client: httpx.AsyncClient) -> str:
    response = await client.get("/v1/models")
    response.raise_for_status()
    return str(response.json()["data"][0]["id"])


async def run_eval(
    problems: Sequence[Problem],
    configs: Sequence[EvalConfig],
    settings: EvalSettings,
    *,
    progress: bool = True,
    transport: httpx.AsyncBaseTransport | None = None,
) -> list[dict[str, Any]]:
    """One result row per (configuration, seed, problem), in that order.

    `transport` replaces the network (tests pass an ASGI transport to an app in process).
    """
    from tqdm import tqdm

    headers = {"Authorization": f"Bearer {settings.api_key}"} if settings.api_key else {}
    limits = httpx.Limits(max_connections=settings.concurrency)
    async with httpx.AsyncClient(
        base_url=settings.base_url,
        headers=headers,
        timeout=settings.timeout_s,
        limits=limits,
        transport=transport,
    ) as client:
        model = settings.model or await _served_model(client)
        gate = asyncio.Semaphore(settings.concurrency)
        runs = [(p, c, seed) for c in configs for seed in settings.seeds for p in problems]
        bar = tqdm(total=len(runs), desc="ponder eval", disable=not progress)

        async def guarded(problem: Problem, config: EvalConfig, seed: int | None) -> dict[str, Any]:
            async with gate:
                row = await _one(client, problem, config, model, settings, seed)
            bar.update(1)
            return row

        try:
            rows = await asyncio.gather(*(guarded(*run) for run in runs))
        finally:
            bar.close()
    failed = sum(1 for r in rows if r["error"])
    if failed:
        first = next(r["error"] for r in rows if r["error"])
        logger.warning("%d of %d requests failed; first: %s", failed, len(rows), first)
    return list(rows)


def write_results(rows: Sequence[dict[str, Any]], path: Path) -> None:
    with path.open("w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row) + "\n")


def read_results(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
