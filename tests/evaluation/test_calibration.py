from typing import Any

import pytest

from ponder.evaluation.calibration import PROBE_LABEL, PROBE_TTS, CalibrationError, fit_policy
from ponder.strategies.policy import PolicyTable, parse_policy

BASE = PolicyTable.model_validate(
    {
        "probe": {"n": 4},
        "bins": [
            {"name": "easy", "max_difficulty": 0.25, "options": [{"tts": {"strategy": "none"}}]},
            {"name": "medium", "max_difficulty": 0.5, "options": [{"tts": {"strategy": "none"}}]},
            {"name": "hard", "max_difficulty": 0.9, "options": [{"tts": {"strategy": "none"}}]},
            {"name": "hopeless", "max_difficulty": 1.0, "options": [{"tts": {"strategy": "none"}}]},
        ],
    }
)
SC8 = {"strategy": "self_consistency", "n": 8}
BON8 = {"strategy": "best_of_n", "n": 8, "verifier": "confidence"}
DIFFICULTY = {"p1": 0.0, "p2": 0.25, "p3": 0.5, "p4": 0.5, "p5": 0.75, "p6": 0.75}


def rows(label: str, tts: dict, correct: set[str], tokens: int) -> list[dict[str, Any]]:
    return [
        {
            "problem_id": p,
            "label": label,
            "tts": tts,
            "correct": p in correct,
            "generated_tokens": tokens,
            "difficulty": d if label == PROBE_LABEL else None,
            "error": None,
        }
        for p, d in DIFFICULTY.items()
    ]


RESULTS = [
    *rows(PROBE_LABEL, PROBE_TTS, {"p1", "p2"}, 40),
    *rows("none", {"strategy": "none"}, {"p1"}, 10),
    *rows("sc@8", SC8, {"p1", "p2", "p3", "p4"}, 80),
    *rows("bon@8", BON8, {"p3", "p5"}, 80),
]


def test_each_bin_gets_its_pareto_options_and_the_best_is_chosen() -> None:
    table = fit_policy(RESULTS, BASE, name="fitted", prior_strength=0)
    easy, medium, hard, hopeless = table.bins
    # Easy: the probe's own vote is as accurate as anything and costs nothing more.
    assert [o.tts for o in easy.options] == [{"strategy": "self_consistency", "n": 4}]
    assert easy.options[0].tokens == 0 and easy.options[0].accuracy == 1.0
    assert easy.problems == 2
    # Medium: self-consistency@8 reuses the probe's 4 samples, so it adds 80 * 4/8 tokens.
    assert [(o.tts, o.accuracy, o.tokens) for o in medium.options] == [
        ({"strategy": "self_consistency", "n": 4}, 0.0, 0.0),
        (SC8, 1.0, 40.0),
    ]
    assert medium.choose(None).tts == SC8
    # Hard: only best-of-N found one; it reuses the probe's samples too (80 * 4/8 tokens).
    assert hard.choose(None).tts == BON8 and hard.choose(None).tokens == 40.0
    # No calibration problem was hopeless: the base table's options stay.
    assert hopeless.problems == 0 and hopeless.options == BASE.bins[3].options
    assert table.name == "fitted" and table.calibration["problems"] == 6
    assert table.calibration["candidates"] == ["bon@8", "none", "sc@8"]
    assert parse_policy(table.model_dump_json(exclude_none=True)) == table


def test_a_budget_keeps_only_options_within_it() -> None:
    table = fit_policy(RESULTS, BASE, budget=30, prior_strength=0)
    assert table.budget == 30
    assert [o.tokens for o in table.bins[1].options] == [0.0]


def test_ties_go_to_the_cheaper_option() -> None:
    results = [
        *rows(PROBE_LABEL, PROBE_TTS, {"p3"}, 40),
        *rows("sc@8", SC8, {"p3"}, 80),
    ]
    assert fit_policy(results, BASE, prior_strength=0).bins[1].choose(None).tokens == 0.0


def test_failed_probe_rows_do_not_place_a_problem() -> None:
    results = [dict(r) for r in RESULTS]
    for r in results:
        if r["label"] == PROBE_LABEL and r["problem_id"] in ("p1", "p2"):
            r.update(error="HTTP 503", difficulty=None)
    table = fit_policy(results, BASE)
    assert table.bins[0].problems == 0 and table.calibration["problems"] == 4


def test_calibration_needs_the_probe_and_a_candidate() -> None:
    with pytest.raises(CalibrationError, match="no successful 'probe' rows"):
        fit_policy(rows("sc@8", SC8, set(), 80), BASE)
    with pytest.raises(CalibrationError, match="no candidate"):
        fit_policy(rows(PROBE_LABEL, PROBE_TTS, set(), 40), BASE)


def test_a_bin_with_little_evidence_keeps_the_globally_best_option() -> None:
    # sc@8 wins overall (4 of 6); in the two-problem hard bin best-of-N happened to win once.
    table = fit_policy(RESULTS, BASE, prior_strength=8)
    hard = table.bins[2]
    assert hard.choose(None).tts == SC8
    chosen = hard.choose(None)
    assert chosen.accuracy == 0.0 and chosen.estimate == pytest.approx((0 + 8 * 4 / 6) / 10, 1e-3)
    assert chosen.interval is not None and chosen.interval[0] == 0.0 and chosen.interval[1] < 1
    assert table.calibration["prior_strength"] == 8
    # Enough evidence in a bin still departs from the global choice.
    many = [{**r, "problem_id": f"{r['problem_id']}-{i}"} for i in range(20) for r in RESULTS]
    assert fit_policy(many, BASE, prior_strength=8).bins[2].choose(None).tts == BON8
