"""Issue 14's held-out table from the rows run.sh appended: per configuration, accuracy with its
95 % Wilson interval on each task and over all, generated tokens and wall seconds per problem, and
the plot of accuracy against tokens; for configurations run with a trace, also the share of
problems some candidate answered right (the ceiling a selection can reach). Writes summary.md
and accuracy.png beside RESULTS.

    .venv/bin/python docs/results/heldout/report.py RESULTS_JSONL[.gz] [TITLE]
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

from ponder.evaluation.report import plot_accuracy, summarize
from ponder.evaluation.statistics import format_interval

TASKS = ("chain_sum", "basic_arithmetic", "gsm_symbolic")


def main() -> None:
    path = Path(sys.argv[1])
    title = sys.argv[2] if len(sys.argv) > 2 else "held-out reasoning-gym problems"
    text = gzip.decompress(path.read_bytes()).decode() if path.suffix == ".gz" else path.read_text()
    rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    overall = summarize(rows)
    per_task = {
        task: {
            s["config"]: s for s in summarize([r for r in rows if r["problem_id"].startswith(task)])
        }
        for task in TASKS
    }
    lines = [
        "| configuration | " + " | ".join(TASKS) + " | all | tokens/problem | s/problem |",
        "|---|" + "---|" * (len(TASKS) + 3),
    ]
    ceilings = []
    for s in overall:
        config = s["config"]
        cells = [_cell(per_task[task].get(config), "accuracy") for task in TASKS]
        lines.append(
            f"| {config} | " + " | ".join(cells) + f" | {_cell(s, 'accuracy')} | "
            f"{s['generated_tokens']:.0f} | {s['wall_s']:.2f} |"
        )
        if "any_correct" in s:
            ceiling = [_cell(per_task[task].get(config), "any_correct") for task in TASKS]
            ceilings.append(f"| {config} | " + " | ".join(ceiling) + " |")
    if ceilings:
        lines += [
            "",
            "Any candidate correct (the ceiling of a selection among the same candidates):",
            "",
            "| configuration | " + " | ".join(TASKS) + " |",
            "|---|" + "---|" * len(TASKS),
            *ceilings,
        ]
    table = "\n".join(lines) + "\n"
    (path.parent / "summary.md").write_text(table, encoding="utf-8")
    plot_accuracy(overall, path.parent / "accuracy.png", title)
    sys.stdout.write(table)


def _cell(summary: dict | None, key: str) -> str:
    """A rate with its interval ("accuracy" or "any_correct"), or "-" where there is none."""
    if not summary or key not in summary:
        return "-"
    return f"{summary[key]:.1%} ({format_interval(summary[key + '_low'], summary[key + '_high'])})"


if __name__ == "__main__":
    main()
