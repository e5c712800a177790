"""What an evaluation shows: a summary per configuration, as Markdown and as a plot.

The plot puts accuracy against mean generated tokens, one line per strategy (configurations whose
labels share the part before `@`, or one configuration at several budgets), which is the
trade-off a user weighs before trusting a strategy with their traffic. Every accuracy carries its
95 % Wilson interval (over all problems and seeds of a configuration), drawn as error bars.
Configurations asked with `return_trace` also show their ceiling: the share of problems on which
some candidate was right, which a verifier that picks among them can at best reach.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .statistics import format_interval, wilson_interval

__all__ = ["markdown_table", "plot_accuracy", "summarize"]


def summarize(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per configuration, in the order configurations first appear."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(row["config"], []).append(row)
    summary = []
    for key, group in groups.items():
        n = len(group)
        correct = sum(bool(r["correct"]) for r in group)
        low, high = wilson_interval(correct, n)
        summary.append(
            {
                "config": key,
                "line": group[0]["line"],
                "budget": group[0]["budget"],
                "problems": len({r["problem_id"] for r in group}),
                "seeds": len({r.get("seed") for r in group}),
                "accuracy": correct / n,
                "accuracy_low": low,
                "accuracy_high": high,
                "seed_accuracies": _seed_accuracies(group),
                "generated_tokens": sum(r["generated_tokens"] for r in group) / n,
                "verifier_tokens": sum(r["verifier_tokens"] for r in group) / n,
                "wall_s": sum(r["wall_s"] for r in group) / n,
                "errors": sum(1 for r in group if r.get("error")),
                **_ceiling(group),
            }
        )
    return summary


def _ceiling(group: Sequence[dict[str, Any]]) -> dict[str, float]:
    """With traces, the share of problems some candidate answered right, and its interval."""
    traced = [r for r in group if "any_correct" in r]
    if len(traced) < len(group) or not traced:
        return {}
    hits = sum(bool(r["any_correct"]) for r in traced)
    low, high = wilson_interval(hits, len(traced))
    return {"any_correct": hits / len(traced), "any_correct_low": low, "any_correct_high": high}


def _seed_accuracies(group: Sequence[dict[str, Any]]) -> list[float]:
    """Accuracy per seed, in seed order (one entry for a run without seeds)."""
    by_seed: dict[Any, list[bool]] = {}
    for r in group:
        by_seed.setdefault(r.get("seed"), []).append(bool(r["correct"]))
    order = sorted(by_seed, key=lambda s: (s is None, s if s is not None else 0))
    return [sum(by_seed[s]) / len(by_seed[s]) for s in order]


def markdown_table(summary: Sequence[dict[str, Any]]) -> str:
    ceiling = any("any_correct" in s for s in summary)
    lines = [
        "| configuration | problems | seeds | accuracy | 95 % interval | accuracy per seed "
        + ("| any candidate correct " if ceiling else "")
        + "| generated tokens | verifier tokens | wall s | errors |",
        "|---|---|---|---|---|---|---|" + ("---|" if ceiling else "") + "---|---|---|",
    ]
    for s in summary:
        per_seed = " / ".join(f"{a:.0%}" for a in s["seed_accuracies"])
        any_cell = ""
        if ceiling:
            any_cell = "- | "
            if "any_correct" in s:
                interval = format_interval(s["any_correct_low"], s["any_correct_high"])
                any_cell = f"{s['any_correct']:.1%} ({interval}) | "
        lines.append(
            f"| {s['config']} | {s['problems']} | {s['seeds']} | {s['accuracy']:.1%} | "
            f"{format_interval(s['accuracy_low'], s['accuracy_high'])} | {per_seed} | "
            f"{any_cell}{s['generated_tokens']:.0f} | {s['verifier_tokens']:.0f} | "
            f"{s['wall_s']:.2f} | {s['errors']} |"
        )
    return "\n".join(lines) + "\n"


def plot_accuracy(summary: Sequence[dict[str, Any]], path: Path, title: str = "") -> None:
    """Accuracy (with its interval) against mean generated tokens, one line per strategy, as a
    PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines: dict[str, list[dict[str, Any]]] = {}
    for s in summary:
        lines.setdefault(s["line"], []).append(s)
    figure, axes = plt.subplots(figsize=(7, 4.5), dpi=120)
    for name, points in lines.items():
        points = sorted(points, key=lambda p: p["generated_tokens"])
        accuracy = [100 * p["accuracy"] for p in points]
        axes.errorbar(
            [p["generated_tokens"] for p in points],
            accuracy,
            yerr=[
                [a - 100 * p["accuracy_low"] for a, p in zip(accuracy, points, strict=True)],
                [100 * p["accuracy_high"] - a for a, p in zip(accuracy, points, strict=True)],
            ],
            marker="o",
            capsize=3,
            label=name,
        )
    axes.set_xlabel("mean generated tokens per problem")
    axes.set_ylabel("accuracy (%)")
    axes.set_title(title or "accuracy against generated tokens")
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, format="png")
    plt.close(figure)
