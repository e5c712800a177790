"""Does a fitted compute-optimal policy beat the fixed strategies it chooses from, on new problems?

A policy fitted and scored on the same problems always looks best: each bin keeps whatever
happened to win there. `cross_validate` fits on all folds but one and answers the held-out fold's
problems by replaying the calibration rows (the probe's difficulty picks the bin, the bin's
choice picks which configuration's row answers), against the fixed configuration that was most
accurate on the training folds. Nothing is generated: it reads a calibration's results file.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ponder.strategies.policy import PolicyTable

from .calibration import (
    DEFAULT_PRIOR_STRENGTH,
    PROBE_LABEL,
    CalibrationError,
    fit_policy,
    option_tts,
    tokens_after_probe,
)
from .statistics import format_interval, wilson_interval

__all__ = ["CrossValidation", "HeldOut", "cross_validate"]


@dataclass(frozen=True)
class HeldOut:
    """How one way of answering did on the held-out problems of every fold."""

    name: str
    correct: int
    problems: int
    tokens: float

    @property
    def accuracy(self) -> float:
        return self.correct / self.problems if self.problems else 0.0

    def line(self) -> str:
        low, high = wilson_interval(self.correct, self.problems)
        return (
            f"{self.name}: {self.accuracy:.1%} ({format_interval(low, high)}) of "
            f"{self.problems}, {self.tokens:.0f} tokens per problem"
        )


@dataclass(frozen=True)
class CrossValidation:
    folds: int
    policy: HeldOut
    best_fixed: HeldOut
    # The fixed configuration each fold's training data chose, fold by fold.
    fixed_choices: tuple[str, ...]


def _key(tts: dict[str, Any]) -> str:
    return json.dumps(tts, sort_keys=True)


def cross_validate(
    rows: Sequence[dict[str, Any]],
    base: PolicyTable,
    *,
    folds: int,
    budget: int | None = None,
    prior_strength: float = DEFAULT_PRIOR_STRENGTH,
    seed: int = 0,
) -> CrossValidation:
    """Held-out accuracy and tokens of the fitted policy and of the best fixed configuration."""
    if folds < 2:
        raise CalibrationError("cross-validation needs at least 2 folds")
    ok = [r for r in rows if not r.get("error")]
    probe = {r["problem_id"]: r for r in ok if r["label"] == PROBE_LABEL}
    problems = sorted(p for p, r in probe.items() if r.get("difficulty") is not None)
    if len(problems) < folds:
        raise CalibrationError(f"{len(problems)} probed problems cannot make {folds} folds")
    by_cell = {(r["label"], r["problem_id"]): r for r in ok}
    labels = sorted({r["label"] for r in ok} - {PROBE_LABEL})
    random.Random(seed).shuffle(problems)
    fold_of = {p: i % folds for i, p in enumerate(problems)}
    probe_n = base.probe.n
    policy = [0, 0, 0.0]
    fixed = [0, 0, 0.0]
    choices = []
    for k in range(folds):
        train = [r for r in rows if fold_of.get(r["problem_id"], -1) != k]
        table = fit_policy(train, base, budget=budget, prior_strength=prior_strength)
        label_of = {
            _key(option_tts(label, [r for r in train if r["label"] == label], probe_n)): label
            for label in [*labels, PROBE_LABEL]
            if any(r["label"] == label for r in train)
        }
        best = _best_fixed(train, labels, budget)
        choices.append(best)
        for problem in (p for p in problems if fold_of[p] == k):
            option = table.bin_for(probe[problem]["difficulty"]).choose(table.budget)
            chosen = by_cell.get((label_of.get(_key(option.tts), ""), problem))
            spent = probe[problem]["generated_tokens"]
            if chosen is not None and chosen["label"] != PROBE_LABEL:
                spent += tokens_after_probe(chosen["tts"], chosen["generated_tokens"], probe_n)
            _add(policy, chosen is not None and bool(chosen["correct"]), spent)
            answer = by_cell.get((best, problem))
            _add(fixed, answer is not None and bool(answer["correct"]), _tokens(answer))
    return CrossValidation(
        folds=folds,
        policy=HeldOut("compute_optimal (fitted)", int(policy[0]), int(policy[1]), _mean(policy)),
        best_fixed=HeldOut("best fixed", int(fixed[0]), int(fixed[1]), _mean(fixed)),
        fixed_choices=tuple(choices),
    )


def _best_fixed(train: Sequence[dict[str, Any]], labels: Sequence[str], budget: int | None) -> str:
    """The most accurate configuration on the training folds (within the budget, if one is set;
    ties to the cheaper)."""
    scored = []
    for label in labels:
        mine = [r for r in train if r["label"] == label and not r.get("error")]
        if not mine:
            continue
        tokens = sum(r["generated_tokens"] for r in mine) / len(mine)
        accuracy = sum(bool(r["correct"]) for r in mine) / len(mine)
        scored.append((budget is None or tokens <= budget, accuracy, -tokens, label))
    if not scored:
        raise CalibrationError("no candidate configuration has rows to choose from")
    return max(scored)[3]


def _tokens(row: dict[str, Any] | None) -> float:
    return float(row["generated_tokens"]) if row is not None else 0.0


def _add(total: list[float], correct: bool, tokens: float) -> None:
    total[0] += int(correct)
    total[1] += 1
    total[2] += tokens


def _mean(total: list[float]) -> float:
    return total[2] / total[1] if total[1] else 0.0
