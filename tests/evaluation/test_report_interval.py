"""The evaluation report's accuracy interval: Wilson's, checked against known values."""

from __future__ import annotations

import pytest

from ponder.evaluation.report import markdown_table, summarize
from ponder.evaluation.statistics import wilson_interval


@pytest.mark.parametrize(
    ("successes", "trials", "low", "high"),
    [(2, 2, 0.3424, 1.0), (0, 10, 0.0, 0.2775), (5, 10, 0.2366, 0.7634), (15, 30, 0.3315, 0.6685)],
)
def test_wilson_interval(successes: int, trials: int, low: float, high: float) -> None:
    assert wilson_interval(successes, trials) == pytest.approx((low, high), abs=1e-4)


def test_the_summary_and_table_carry_the_interval() -> None:
    rows = [
        {
            "config": "a",
            "line": "a",
            "budget": None,
            "correct": ok,
            "generated_tokens": 1,
            "verifier_tokens": 0,
            "wall_s": 0.1,
            "error": None,
            "problem_id": f"p{i}",
        }
        for i, ok in enumerate([True] * 5 + [False] * 5)
    ]
    (summary,) = summarize(rows)
    assert (summary["accuracy_low"], summary["accuracy_high"]) == pytest.approx(
        (0.2366, 0.7634), abs=1e-4
    )
    assert "| 50.0% | 24%-76% |" in markdown_table([summary])


@pytest.mark.parametrize("trials", [3, 10, 37, 600])
def test_the_interval_holds_the_observed_rate_exactly_at_none_and_all(trials: int) -> None:
    assert wilson_interval(0, trials)[0] == 0.0
    assert wilson_interval(trials, trials)[1] == 1.0


def test_a_configuration_at_zero_or_full_accuracy_is_plotted(tmp_path) -> None:
    from ponder.evaluation.report import plot_accuracy

    rows = [
        {
            "config": config,
            "line": config,
            "budget": None,
            "correct": ok,
            "generated_tokens": 10,
            "verifier_tokens": 0,
            "wall_s": 0.1,
            "error": None,
            "problem_id": f"p{i}",
        }
        for config, ok in (("never", False), ("always", True))
        for i in range(3)
    ]
    plot_accuracy(summarize(rows), tmp_path / "accuracy.png")
    assert (tmp_path / "accuracy.png").stat().st_size > 0
