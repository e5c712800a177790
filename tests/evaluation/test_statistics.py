"""Intervals and shrinkage that evaluation reports and calibration rely on."""

from __future__ import annotations

import pytest

from ponder.evaluation.statistics import format_interval, shrunk_rate, wilson_interval


def test_wilson_interval_matches_known_values_and_stays_in_range() -> None:
    # 45 of 100: the textbook Wilson 95 % interval is 35.6 %-54.8 %.
    low, high = wilson_interval(45, 100)
    assert low == pytest.approx(0.3561, abs=1e-3) and high == pytest.approx(0.5476, abs=1e-3)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(0, 10)[1] > 0.2
    assert wilson_interval(10, 10)[1] == pytest.approx(1.0) and wilson_interval(10, 10)[0] < 0.8
    assert wilson_interval(0, 0) == (0.0, 1.0)
    # More trials, narrower interval.
    narrow, wide = wilson_interval(450, 1000), wilson_interval(45, 100)
    assert narrow[1] - narrow[0] < wide[1] - wide[0]
    with pytest.raises(ValueError):
        wilson_interval(11, 10)
    assert format_interval(0.356, 0.548) == "36%-55%"


def test_shrunk_rate_moves_from_the_prior_to_the_data_as_trials_grow() -> None:
    assert shrunk_rate(1, 1, 0.5, 8) == pytest.approx(5 / 9)
    assert shrunk_rate(100, 100, 0.5, 8) == pytest.approx(104 / 108)
    assert shrunk_rate(1, 1, 0.5, 0) == 1.0
    assert shrunk_rate(0, 0, 0.3, 0) == 0.3
