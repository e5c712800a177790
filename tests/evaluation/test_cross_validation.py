"""Cross-validating a fitted policy against the best fixed configuration, from results rows."""

from __future__ import annotations

from typing import Any

import pytest

from ponder.evaluation.calibration import PROBE_LABEL, PROBE_TTS, CalibrationError
from ponder.evaluation.cross_validation import cross_validate
from ponder.strategies.policy import PolicyTable

BASE = PolicyTable.model_validate(
    {
        "probe": {"n": 4},
        "bins": [
            {"name": "easy", "max_difficulty": 0.25, "options": [{"tts": {"strategy": "none"}}]},
            {"name": "hard", "max_difficulty": 1.0, "options": [{"tts": {"strategy": "none"}}]},
        ],
    }
)
SC8 = {"strategy": "self_consistency", "n": 8}
GREEDY = {"strategy": "none"}


def _rows(problems: int) -> list[dict[str, Any]]:
    """Easy problems (even): the probe's vote is right. Hard ones (odd): only greedy is."""
    rows = []
    for i in range(problems):
        easy = i % 2 == 0
        cells = [
            (PROBE_LABEL, PROBE_TTS, easy, 40, 0.0 if easy else 1.0),
            ("sc@8", SC8, easy, 80, None),
            ("greedy", GREEDY, not easy, 10, None),
        ]
        rows += [
            {"problem_id": f"p{i}", "label": label, "tts": tts, "correct": ok,
             "generated_tokens": tokens, "difficulty": d, "error": None}
            for label, tts, ok, tokens, d in cells
        ]  # fmt: skip
    return rows


def test_a_policy_that_routes_by_difficulty_beats_every_fixed_option_on_held_out_problems() -> None:
    result = cross_validate(_rows(40), BASE, folds=4, prior_strength=8)
    assert result.policy.problems == result.best_fixed.problems == 40
    # Easy problems answered by the probe's vote, hard ones by greedy decoding: all right.
    assert result.policy.correct == 40
    # Each fixed option gets half of all problems; a fold's pick gets at most that share of it.
    assert result.best_fixed.correct <= 20
    assert set(result.fixed_choices) <= {"sc@8", "greedy"}
    # Tokens: the probe (40) on every problem, plus greedy's 10 on the hard half.
    assert result.policy.tokens == pytest.approx(45.0)
    assert "100.0%" in result.policy.line()


def test_cross_validation_needs_folds_and_problems() -> None:
    with pytest.raises(CalibrationError, match="at least 2"):
        cross_validate(_rows(4), BASE, folds=1)
    with pytest.raises(CalibrationError, match="cannot make"):
        cross_validate(_rows(2), BASE, folds=3)
