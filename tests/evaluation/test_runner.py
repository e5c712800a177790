"""The eval driver against the real app in process (scripted engine), through an ASGI transport."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from ponder.core.answers import equivalent
from ponder.evaluation.datasets import Problem
from ponder.evaluation.report import markdown_table, plot_accuracy, summarize
from ponder.evaluation.runner import (
    EvalConfig,
    EvalSettings,
    parse_config,
    read_results,
    run_eval,
    write_results,
)
from ponder.server.app import create_app
from ponder.server.settings import Settings
from ponder.verifiers.loading import load_configured_verifiers
from tests.scripted import ScriptedEngine


def problem(pid: str, answer: str) -> Problem:
    return Problem(pid, f"question {pid}", answer, check=lambda a: equivalent(a, answer))


async def evaluate(
    engine: ScriptedEngine,
    configs: list[EvalConfig],
    concurrency: int = 1,
    seeds: tuple[int | None, ...] = (None,),
    **settings: Any,
) -> list:
    app = create_app(
        Settings(**settings), engine=engine, verifiers=load_configured_verifiers(engine)
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        return await run_eval(
            [problem("p1", "5"), problem("p2", "7")],
            configs,
            EvalSettings(base_url="http://ponder", concurrency=concurrency, seeds=seeds),
            progress=False,
            transport=transport,
        )


async def test_rows_per_config_and_problem_with_answers_checked_and_tokens_counted() -> None:
    # Greedy first (one sample per problem), then self-consistency@3 (three per problem).
    engine = ScriptedEngine(texts=["5", "8", "The answer is 5", "5", "9", "7", "77", "7"])
    configs = [
        EvalConfig("none", {"strategy": "none"}),
        EvalConfig("sc@3", {"strategy": "self_consistency", "n": 3}, budget=1000),
    ]
    rows = await evaluate(engine, configs)
    assert [(r["config"], r["problem_id"]) for r in rows] == [
        ("none", "p1"),
        ("none", "p2"),
        ("sc@3 [1000]", "p1"),
        ("sc@3 [1000]", "p2"),
    ]
    assert [r["correct"] for r in rows] == [True, False, True, True]
    assert [r["generated_tokens"] for r in rows] == [1, 1, 17, 4]
    assert rows[2]["line"] == "sc" and rows[2]["budget"] == 1000
    # Budgets travel as tts.budget.max_tokens; greedy strategies are asked for temperature 0.
    sc_calls = [c for c in engine.calls if c.n == 3]
    assert len(sc_calls) == 2 and all(c.options.temperature == 0.8 for c in sc_calls)
    assert [c.options.temperature for c in engine.calls if c.n == 1] == [0.0, 0.0]


async def test_each_seed_answers_every_problem_and_reaches_the_engine() -> None:
    engine = ScriptedEngine(texts=["5", "7", "5", "8"])
    rows = await evaluate(engine, [EvalConfig("sc@1", {"strategy": "self_consistency", "n": 1})],
                          seeds=(3, 4))  # fmt: skip
    assert [(r["seed"], r["problem_id"], r["correct"]) for r in rows] == [
        (3, "p1", True),
        (3, "p2", True),
        (4, "p1", True),
        (4, "p2", False),
    ]
    assert sorted(c.options.seed or 0 for c in engine.calls) == [3, 3, 4, 4]
    summary = summarize(rows)[0]
    assert summary["problems"] == 2 and summary["seeds"] == 2
    assert summary["accuracy"] == 0.75 and summary["seed_accuracies"] == [1.0, 0.5]
    assert summary["accuracy_low"] < 0.75 < summary["accuracy_high"]


async def test_a_refused_request_is_a_wrong_row_with_its_error() -> None:
    engine = ScriptedEngine(texts=["5", "7"])
    rows = await evaluate(engine, [EvalConfig("bad", {"strategy": "nope"})])
    assert [r["correct"] for r in rows] == [False, False]
    assert all("HTTP 400" in r["error"] and "unknown strategy" in r["error"] for r in rows)
    summary = summarize(rows)
    assert summary[0]["errors"] == 2 and summary[0]["accuracy"] == 0.0


async def test_a_full_server_is_waited_out() -> None:
    # One slot and no queue: the second concurrent request gets 429 and retries after it.
    engine = ScriptedEngine(texts=["5", "7"], delay=0.3)
    rows = await evaluate(
        engine,
        [EvalConfig("none", {"strategy": "none"})],
        concurrency=2,
        max_concurrent_requests=1,
        max_queued_requests=0,
    )
    assert [r["error"] for r in rows] == [None, None]
    assert sum(r["correct"] for r in rows) == 2


def test_results_summary_table_and_plot(tmp_path: Path) -> None:
    rows = [
        {
            "config": c,
            "line": c.partition("@")[0],
            "budget": None,
            "correct": ok,
            "generated_tokens": t,
            "verifier_tokens": 0,
            "wall_s": 1.0,
            "error": None,
            "problem_id": p,
        }
        for c, p, ok, t in [
            ("sc@4", "a", True, 40),
            ("sc@4", "b", False, 60),
            ("sc@8", "a", True, 80),
            ("sc@8", "b", True, 120),
            ("none", "a", False, 10),
            ("none", "b", False, 10),
        ]
    ]
    write_results(rows, tmp_path / "results.jsonl")
    assert read_results(tmp_path / "results.jsonl") == rows
    summary = summarize(rows)
    assert [(s["config"], s["accuracy"], s["generated_tokens"]) for s in summary] == [
        ("sc@4", 0.5, 50.0),
        ("sc@8", 1.0, 100.0),
        ("none", 0.0, 10.0),
    ]
    table = markdown_table(summary)
    assert "| sc@8 | 2 | 1 | 100.0% | 34%-100% | 100% | 100 | 0 | 1.00 | 0 |" in table
    plot_accuracy(summary, tmp_path / "accuracy.png")
    from PIL import Image

    with Image.open(tmp_path / "accuracy.png") as image:
        assert image.format == "PNG" and image.size[0] > 300


@pytest.mark.parametrize(
    ("text", "message"),
    [("sc", "LABEL=JSON"), ("sc=[1]", "JSON object"), ("sc={", "not JSON")],
)
def test_parse_config_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_config(text)
    assert parse_config('a@1={"strategy": "none"}') == EvalConfig("a@1", {"strategy": "none"})


async def test_a_reasoning_effort_configuration_sends_only_openais_field() -> None:
    # The shipped `medium` preset: adaptive self-consistency over 8 samples started together.
    texts = ["5", "5", "5", "5", "6", "6", "1", "2", "7", "7", "7", "7", "3", "4", "1", "2"]
    engine = ScriptedEngine(texts=texts)
    rows = await evaluate(engine, [EvalConfig("effort@medium", {}, None, "medium")])
    assert [r["correct"] for r in rows] == [True, True]
    assert rows[0]["reasoning_effort"] == "medium" and rows[0]["line"] == "effort"
    assert [c.n for c in engine.calls] == [8, 8]
    assert all(c.options.temperature == 0.7 for c in engine.calls)


async def test_a_traced_configuration_records_whether_any_candidate_was_right() -> None:
    # best_of_n@3 with a trace: on p1 the vote picks "8" (twice) but one candidate said "5";
    # on p2 no candidate is right. Without a trace no ceiling is recorded.
    engine = ScriptedEngine(texts=["8", "5", "8", "1", "2", "3", "5", "9"])
    configs = [
        EvalConfig("sc@3", {"strategy": "self_consistency", "n": 3, "return_trace": True}),
        EvalConfig("none", {"strategy": "none"}),
    ]
    rows = await evaluate(engine, configs)
    assert [(r["correct"], r.get("any_correct")) for r in rows] == [
        (False, True),
        (False, False),
        (True, None),
        (False, None),
    ]
    sc, none = summarize(rows)
    assert sc["any_correct"] == 0.5 and "any_correct" not in none
    table = markdown_table([sc, none])
    assert "| any candidate correct |" in table
    assert "| 50.0% (9%-91%) |" in table and "| - |" in table
