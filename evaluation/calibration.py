"""`ponder calibrate`: fit a compute-optimal policy table from labelled evaluation results.

The calibration run answers every problem with the server's difficulty probe (`compute_optimal`
with `probe_only`) and with each candidate configuration. Problems are binned by the probe's
estimate, with the base table's bins, so that the server bins them the same way at run time.
Per bin, each candidate's accuracy and the tokens it adds after the probe are measured, dominated
candidates are dropped, and what remains becomes the bin's options; the server then runs the
most accurate option that fits a request's budget.

Tokens "after the probe" matter because the probe's samples are reused: a self-consistency or
best-of-N option of n samples draws only n minus the probe's samples at run time.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from ponder.strategies.policy import PolicyBin, PolicyOption, PolicyTable

__all__ = ["PROBE_LABEL", "PROBE_TTS", "CalibrationError", "fit_policy", "probe_option_tts"]

PROBE_LABEL = "probe"
PROBE_TTS = {"strategy": "compute_optimal", "probe_only": True}
# Strategies whose first engine call samples the request `n` times and so reuses the probe.
_REUSING = ("self_consistency", "best_of_n")


class CalibrationError(ValueError):
    """Results that cannot be calibrated on (no probe rows, no candidates)."""


def probe_option_tts(n: int) -> dict[str, Any]:
    """The option that answers with the probe's own vote: nothing generated after the probe."""
    return {"strategy": "self_consistency", "n": n}


def _tokens_after_probe(tts: dict[str, Any], measured: float, probe_n: int) -> float:
    n = tts.get("n")
    if tts.get("strategy") in _REUSING and isinstance(n, int) and n > 0:
        return measured * max(0, n - probe_n) / n
    return measured


def _pareto(options: list[PolicyOption]) -> list[PolicyOption]:
    """Options no other beats on accuracy without costing more, cheapest first."""
    kept: list[PolicyOption] = []
    for option in sorted(options, key=lambda o: (o.tokens or 0.0, -(o.accuracy or 0.0))):
        if not kept or (option.accuracy or 0.0) > (kept[-1].accuracy or 0.0):
            kept.append(option)
    return kept


def fit_policy(
    rows: Sequence[dict[str, Any]],
    base: PolicyTable,
    *,
    budget: int | None = None,
    name: str = "calibrated",
    source: dict[str, Any] | None = None,
) -> PolicyTable:
    """A table with `base`'s probe and bins, and options measured on `rows`."""
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
            tts = probe_option_tts(probe_n) if label == PROBE_LABEL else inside[0]["tts"]
            measured = sum(r["generated_tokens"] for r in inside) / len(inside)
            tokens = 0.0 if label == PROBE_LABEL else _tokens_after_probe(tts, measured, probe_n)
            accuracy = sum(bool(r["correct"]) for r in inside) / len(inside)
            options.append(PolicyOption(tts=tts, accuracy=accuracy, tokens=round(tokens, 1)))
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
            "candidates": sorted(set(by_config) - {PROBE_LABEL}),
            "fitted": dt.date.today().isoformat(),
        },
    )
