"""What an evaluation shows: a summary per configuration, as Markdown and as a plot.

The plot puts accuracy against mean generated tokens, one line per strategy (configurations whose
labels share the part before `@`, or one configuration at several budgets), which is the
trade-off a user weighs before trusting a strategy with their traffic.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["markdown_table", "plot_accuracy", "summarize", "wilson_interval"]

# The normal quantile of a two-sided 95% interval.
_Z95 = 1.959963984540054


def wilson_interval(successes: int, trials: int, z: float = _Z95) -> tuple[float, float]:
    """The Wilson score interval of a proportion (95% by default): unlike the normal
    approximation it stays inside [0, 1] and is not empty at 0 or all successes, which small
    evaluations hit often."""
    if trials <= 0:
        return 0.0, 1.0
    p = successes / trials
    z2 = z * z
    centre = (p + z2 / (2 * trials)) / (1 + z2 / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials)) / (1 + z2 / trials)
    return max(0.0, centre - half), min(1.0, centre + half)


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
                "problems": n,
                "accuracy": correct / n,
                "accuracy_low": low,
                "accuracy_high": high,
                "generated_tokens": sum(r["generated_tokens"] for r in group) / n,
                "verifier_tokens": sum(r["verifier_tokens"] for r in group) / n,
                "wall_s": sum(r["wall_s"] for r in group) / n,
                "errors": sum(1 for r in group if r.get("error")),
            }
        )
    return summary


def markdown_table(summary: Sequence[dict[str, Any]]) -> str:
    lines = [
        "| configuration | problems | accuracy | generated tokens | verifier tokens | wall s "
        "| errors | accuracy 95% CI (Wilson) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in summary:
        lines.append(
            f"| {s['config']} | {s['problems']} | {s['accuracy']:.1%} | "
            f"{s['generated_tokens']:.0f} | {s['verifier_tokens']:.0f} | {s['wall_s']:.2f} | "
            f"{s['errors']} | {s['accuracy_low']:.1%} to {s['accuracy_high']:.1%} |"
        )
    return "\n".join(lines) + "\n"


def plot_accuracy(summary: Sequence[dict[str, Any]], path: Path, title: str = "") -> None:
    """Accuracy against mean generated tokens, one line per strategy, saved as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines: dict[str, list[dict[str, Any]]] = {}
    for s in summary:
        lines.setdefault(s["line"], []).append(s)
    figure, axes = plt.subplots(figsize=(7, 4.5), dpi=120)
    for name, points in lines.items():
        points = sorted(points, key=lambda p: p["generated_tokens"])
        axes.plot(
            [p["generated_tokens"] for p in points],
            [100 * p["accuracy"] for p in points],
            marker="o",
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
