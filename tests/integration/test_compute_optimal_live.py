"""compute_optimal, `ponder eval` and `ponder calibrate` against the real server.

The CLI runs as a subprocess, exactly as a user runs it; the calibration test rewrites the
server's --policy-table file and checks that the next request uses the new table.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from openai.types.chat import ChatCompletionMessageParam
from PIL import Image

from ponder.strategies.policy import load_policy
from tests.integration.conftest import MODEL, LiveServer

pytestmark = pytest.mark.integration

QUESTION: list[ChatCompletionMessageParam] = [{"role": "user", "content": "What is 3 + 4?"}]
GENERATED = "vllm:generation_tokens_total"
PROBLEMS = [
    {"id": "add-1", "question": "What is 3 + 4?", "answer": "7"},
    {"id": "add-2", "question": "What is 10 + 5?", "answer": 15},
    {"id": "add-3", "question": "What is 2 + 2?", "answer": "4"},
]
CHAIN_SUMS = "rg:chain_sum?size=2&seed=3&min_terms=2&max_terms=2&min_digits=1&max_digits=1"


def ponder(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "ponder.server.cli", *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def compute_optimal(server: LiveServer, **tts: object) -> dict:
    response = server.client.chat.completions.create(
        model=MODEL,
        messages=QUESTION,
        max_completion_tokens=24,
        temperature=0.8,
        extra_body={"tts": {"strategy": "compute_optimal", "return_trace": True, **tts}},
    )
    data: dict = response.model_dump()
    return data


def test_compute_optimal_through_the_server(server: LiveServer) -> None:
    table = load_policy(server.policy_table)
    generated = server.metric(GENERATED)
    data = compute_optimal(server)
    tts = data["tts"]
    chosen_bin = table.bin_named(tts["difficulty"]["bin"])
    assert chosen_bin is not None and tts["difficulty"]["source"] == "probe"
    assert chosen_bin is table.bin_for(tts["difficulty"]["estimate"])
    assert tts["chosen_params"] == chosen_bin.choose(table.budget).tts
    assert tts["probe"]["samples"] == table.probe.n
    # The probe's samples are reused, not paid twice: usage is exactly what the trace holds,
    # and exactly what the engine generated.
    completion = data["usage"]["completion_tokens"]
    assert completion == sum(c["tokens"] for c in tts["trace"])
    assert server.wait_metric(GENERATED, generated + completion) == generated + completion
    labels = {"bin": chosen_bin.name, "chosen_strategy": tts["chosen_strategy"]}
    assert server.metric("ponder_difficulty_bin_total", **labels) >= 1


def test_a_difficulty_hint_skips_the_probe(server: LiveServer) -> None:
    table = load_policy(server.policy_table)
    tts = compute_optimal(server, difficulty=table.bins[0].name)["tts"]
    assert tts["difficulty"] == {"estimate": None, "bin": table.bins[0].name, "source": "hint"}
    assert "probe" not in tts


def test_eval_writes_results_summary_and_plot(server: LiveServer, tmp_path: Path) -> None:
    dataset = tmp_path / "additions.jsonl"
    dataset.write_text("".join(json.dumps(p) + "\n" for p in PROBLEMS))
    out = tmp_path / "eval"
    done = ponder(
        "eval", "--server", server.base_url, "--no-progress",
        "--dataset", str(dataset), "--dataset", CHAIN_SUMS,
        "--strategy", 'none={"strategy": "none"}',
        "--strategy", 'sc@2={"strategy": "self_consistency", "n": 2}',
        "--budgets", "none,32", "--max-tokens", "16", "--output", str(out),
    )  # fmt: skip
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 5 * 2 * 2
    assert {r["config"] for r in rows} == {"none", "none [32]", "sc@2", "sc@2 [32]"}
    assert all(r["error"] is None for r in rows)
    for r in rows:
        assert set(r) >= {"answer", "correct", "generated_tokens", "verifier_tokens", "wall_s"}
        assert r["generated_tokens"] <= (16 if r["label"] == "none" else 32)
    summary = (out / "summary.md").read_text()
    assert summary.count("\n") == 2 + 4 and "| sc@2 [32] | 5 |" in summary
    assert summary in done.stdout
    with Image.open(out / "accuracy.png") as image:
        image.verify()
        assert image.format == "PNG"


def test_calibrate_writes_a_table_the_server_then_uses(server: LiveServer, tmp_path: Path) -> None:
    dataset = tmp_path / "additions.jsonl"
    dataset.write_text("".join(json.dumps(p) + "\n" for p in PROBLEMS))
    done = ponder(
        "calibrate", "--server", server.base_url, "--no-progress",
        "--dataset", str(dataset), "--dataset", CHAIN_SUMS,
        "--strategy", 'greedy={"strategy": "none"}',
        "--strategy", 'sc@6={"strategy": "self_consistency", "n": 6}',
        "--max-tokens", "16", "--name", "it-calibrated", "--output", str(server.policy_table),
    )  # fmt: skip
    assert "policy table written" in done.stdout
    table = load_policy(server.policy_table)
    assert table.name == "it-calibrated" and table.calibration["problems"] == 5
    assert sum(b.problems or 0 for b in table.bins) == 5
    measured = [o for b in table.bins if b.problems for o in b.options]
    assert measured and all(o.accuracy is not None and o.tokens is not None for o in measured)
    assert {json.dumps(o.tts, sort_keys=True) for o in measured} <= {
        json.dumps(t, sort_keys=True)
        for t in (
            {"strategy": "none"},
            {"strategy": "self_consistency", "n": 6},
            {"strategy": "self_consistency", "n": table.probe.n},
        )
    }
    results = server.policy_table.with_suffix(".results.jsonl")
    assert len(results.read_text().splitlines()) == 5 * 3
    tts = compute_optimal(server)["tts"]
    assert tts["policy"]["name"] == "it-calibrated"
    chosen_bin = table.bin_named(tts["difficulty"]["bin"])
    assert chosen_bin is not None and tts["chosen_params"] == chosen_bin.choose(None).tts


def test_eval_can_start_its_own_server(tmp_path: Path) -> None:
    dataset = tmp_path / "additions.jsonl"
    dataset.write_text("".join(json.dumps(p) + "\n" for p in PROBLEMS[:2]))
    out = tmp_path / "eval"
    command = [
        sys.executable, "-m", "ponder.server.cli", "eval", "--serve", "--port", "0",
        "--no-progress", "--dataset", str(dataset), "--strategy", 'none={"strategy": "none"}',
        "--max-tokens", "8", "--output", str(out),
    ]  # fmt: skip
    env = {**os.environ, "PONDER_CPU_KV_CACHE_GIB": "1", "PONDER_MAX_MODEL_LEN": "512"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [r["problem_id"] for r in rows] == ["add-1", "add-2"]
    assert all(r["error"] is None and r["generated_tokens"] >= 1 for r in rows)
