"""`ponder calibrate`: fit a compute-optimal policy table from labelled evaluation results.

The calibration run answers every problem with the server's difficulty probe (`compute_optimal`
with `probe_only`) and with each candidate configuration. Problems are binned by the probe's
estimate, with the base table's bins, so that the server bins them the same way at run time.
Per bin, each candidate's accuracy and the tokens it adds after the probe are measured, dominated
candidates are dropped, and what remains becomes the bin's options; the server then runs the
most accurate option that fits a request's budget.

Tokens "after the probe" matter because the probe's samples are reused: a self-consistency or
best-of-N option of n samples draws only n minus the probe's samples at run time.

A bin's accuracies are shrunk toward each option's accuracy over all bins (a Beta prior worth
`prior_strength` problems): with a handful of problems in a bin, one lucky answer would otherwise
pick a strategy that loses on new questions, and the policy would do worse than the best fixed
strategy it chooses from. `cross_validate` measures exactly that on held-out problems.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from ponder.strategies.policy import PolicyBin, PolicyOption, PolicyTable

from .statistics import shrunk_rate, wilson_interval

__all__ = [
    "DEFAULT_PRIOR_STRENGTH",
    "PROBE_LABEL",
    "PROBE_TTS",
    "CalibrationError",
    "fit_policy",
    "option_tts",
    "probe_option_tts",
    "tokens_after_probe",
]

PROBE_LABEL = "probe"
PROBE_TTS = {"strategy": "compute_optimal", "probe_only": True}
# Strategies whose first engine call samples the request `n` times and so reuses the probe.
_REUSING = ("self_consistency", "best_of_n")
# Pseudo-problems of evidence the global accuracy is worth in each bin; chosen by
# cross-validation on the shipped calibration results (docs/results/compute_optimal_cv.md).
DEFAULT_PRIOR_STRENGTH = 8.0


class CalibrationError(ValueError):
    """Results that cannot be calibrated on (no probe rows, no candidates)."""


def probe_option_tts(n: int) -> dict[str, Any]:
    """The option that answers with the probe's own vote: nothing generated after the probe."""
    return {"strategy": "self_consistency", "n": n}


def tokens_after_probe(tts: dict[str, Any], measured: float, probe_n: int) -> float:
    """What an option generates after the probe, whose samples it reuses when it can."""
    n = tts.get("n")
    if tts.get("strategy") in _REUSING and isinstance(n, int) and n > 0:
        return measured * max(0, n - probe_n) / n
    return measured


def _pareto(options: list[PolicyOption]) -> list[PolicyOption]:
    """Options no other beats on expected accuracy without costing more, cheapest first."""
    kept: list[PolicyOption] = []
    for option in sorted(options, key=lambda o: (o.tokens or 0.0, -o.expected_accuracy)):
        if not kept or option.expected_accuracy > kept[-1].expected_accuracy:
            kept.append(option)
    return kept


def option_tts(label: str, config_rows: Sequence[dict[str, Any]], probe_n: int) -> dict[str, Any]:
    """The `tts` a configuration's rows stand for in a table (the probe answers with its vote)."""
    return probe_option_tts(probe_n) if label == PROBE_LABEL else dict(config_rows[0]["tts"])


def fit_policy(
    rows: Sequence[dict[str, Any]],
    base: PolicyTable,
    *,
    budget: int | None = None,
    name: str = "calibrated",
    source: dict[str, Any] | None = None,
    prior_strength: float = DEFAULT_PRIOR_STRENGTH,
) -> PolicyTable:
    """A table with `base`'s probe and bins, and options measured on `rows`.

    `prior_strength` 0 ranks options by each bin's raw measurement.
    """
    difficulty = {
        r["problem_id"]: r["difficulty"]
        for r in rows
        if r["label"] == PROBE_LABEL and not r.get("error") and r.get("difficulty") is not None
    }
    if not difficulty:
        raise CalibrationError(f"no successful {PROBE_LABEL!r} rows: the difficulty is unknown")
    by_config: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        if r["problem_id"] in difficulty:
            by_config.setdefault(r["label"], []).append(r)
    if len(by_config) < 2:
        raise CalibrationError("no candidate configurations besides the probe")
    probe_n = base.probe.n
    overall = {
        label: sum(bool(r["correct"]) for r in config_rows) / len(config_rows)
        for label, config_rows in by_config.items()
    }
    # Binned exactly as the server bins a request.
    by_bin: dict[str, set[str]] = {}
    for problem, d in difficulty.items():
        by_bin.setdefault(base.bin_for(d).name, set()).add(problem)
    bins = []
    for b in base.bins:
        members = by_bin.get(b.name, set())
        if not members:
            bins.append(b.model_copy(update={"problems": 0}))
            continue
        options = []
        for label, config_rows in by_config.items():
            inside = [r for r in config_rows if r["problem_id"] in members]
            if not inside:
                continue
            tts = option_tts(label, inside, probe_n)
            measured = sum(r["generated_tokens"] for r in inside) / len(inside)
            tokens = 0.0 if label == PROBE_LABEL else tokens_after_probe(tts, measured, probe_n)
            correct = sum(bool(r["correct"]) for r in inside)
            estimate = shrunk_rate(correct, len(inside), overall[label], prior_strength)
            options.append(
                PolicyOption(
                    tts=tts,
                    accuracy=round(correct / len(inside), 4),
                    tokens=round(tokens, 1),
                    estimate=round(estimate, 4),
                    interval=tuple(round(x, 4) for x in wilson_interval(correct, len(inside))),
                )
            )
        if budget is not None:
            options = [o for o in options if (o.tokens or 0.0) <= budget] or options
        bins.append(
            PolicyBin(
                name=b.name,
                max_difficulty=b.max_difficulty,
                options=_pareto(options),
                problems=len(members),
            )
        )
    return PolicyTable(
        name=name,
        description=f"Fitted by ponder calibrate on {len(difficulty)} problems.",
        probe=base.probe,
        budget=budget,
        bins=bins,
        calibration={
            **(source or {}),
            "problems": len(difficulty),
            "prior_strength": prior_strength,
            "candidates": sorted(set(by_config) - {PROBE_LABEL}),
            "fitted": dt.date.today().isoformat(),
        },
    )
