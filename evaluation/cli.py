"""`ponder eval` and `ponder calibrate`: their flags and what they write.

Both talk to a running server (`--server`) or start one in this process (`--serve`, configured by
the same `PONDER_` variables as `ponder serve`). `eval` writes `results.jsonl`, `summary.md` and
`accuracy.png` to its output folder and prints the summary; `calibrate` runs the probe and the
candidates the same way and writes a policy table that `ponder serve --policy-table` loads.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from .datasets import DatasetError, Problem, load_dataset
from .runner import EvalConfig, EvalSettings, parse_config, run_eval, write_results

__all__ = ["add_commands"]

logger = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_EVAL = [
    EvalConfig("none", {"strategy": "none"}),
    EvalConfig("self_consistency@4", {"strategy": "self_consistency", "n": 4}),
    EvalConfig("self_consistency@8", {"strategy": "self_consistency", "n": 8}),
    EvalConfig("self_consistency@16", {"strategy": "self_consistency", "n": 16}),
    EvalConfig("compute_optimal", {"strategy": "compute_optimal"}),
]
# Not `none`: inside compute_optimal it would answer with one of the probe's samples, which is
# not the greedy answer `eval` measures for it.
DEFAULT_CANDIDATES = [
    EvalConfig("self_consistency@8", {"strategy": "self_consistency", "n": 8}),
    EvalConfig("self_consistency@16", {"strategy": "self_consistency", "n": 16}),
    EvalConfig(
        "best_of_n@8",
        {"strategy": "best_of_n", "n": 8, "verifier": "confidence", "weighted": True},
    ),
]


def _budgets(text: str) -> list[int | None]:
    values: list[int | None] = []
    for part in text.split(","):
        part = part.strip().lower()
        if part in ("none", ""):
            values.append(None)
        elif part.isdigit() and int(part) > 0:
            values.append(int(part))
        else:
            raise argparse.ArgumentTypeError(f"budgets are positive integers or 'none': {part!r}")
    return values


def _seeds(text: str) -> tuple[int, ...]:
    try:
        seeds = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers: {text!r}") from None
    if len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"seeds repeat: {text!r}")
    return seeds


def _config(text: str) -> EvalConfig:
    try:
        return parse_config(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_common(parser: argparse.ArgumentParser) -> None:
    data = parser.add_argument_group("data")
    data.add_argument(
        "--dataset",
        action="append",
        required=True,
        help="A JSONL file (question, answer, optional id and difficulty) or a reasoning-gym "
        "generator, rg:NAME?size=N&seed=S&<config>=<value> (repeat for several).",
    )
    data.add_argument("--limit", type=int, default=None, help="Use the first N problems of each.")
    data.add_argument("--instruction", default="", help="Text appended to every question.")
    data.add_argument("--system", default=None, help="A system message for every question.")
    configs = parser.add_argument_group("configurations")
    configs.add_argument(
        "--strategy",
        dest="configs",
        action="append",
        type=_config,
        help='LABEL=JSON tts object, e.g. sc@8=\'{"strategy": "self_consistency", "n": 8}\'; '
        "labels sharing the part before @ are one line of the plot (repeat).",
    )
    configs.add_argument(
        "--strategies", type=Path, help="A JSON file: a list of {label, tts} objects."
    )
    configs.add_argument(
        "--reasoning-effort",
        default=None,
        help="Comma-separated reasoning_effort levels, each a configuration (effort@LEVEL) "
        "that sends only OpenAI's field, e.g. none,low,medium,high.",
    )
    server = parser.add_argument_group("server")
    server.add_argument("--server", default="http://127.0.0.1:8000", help="Ponder's base URL.")
    server.add_argument(
        "--serve",
        action="store_true",
        help="Start a server in this process (configured by PONDER_ variables) instead.",
    )
    server.add_argument(
        "--port", type=int, default=0, help="Port for --serve (default 0: any free port)."
    )
    server.add_argument("--model", default=None, help="Model id to request; default: the served.")
    server.add_argument("--api-key", default=os.environ.get("PONDER_API_KEY"))
    server.add_argument("--concurrency", type=int, default=4, help="Requests in flight at once.")
    server.add_argument("--max-tokens", type=int, default=256, help="Completion length.")
    server.add_argument("--temperature", type=float, default=0.8, help="For sampling strategies.")
    server.add_argument("--no-progress", action="store_true", help="No progress bar.")
    server.add_argument(
        "--seeds",
        type=_seeds,
        default=(None,),
        help="Comma-separated request seeds; every configuration answers each problem once per "
        "seed (default: once, unseeded).",
    )


def add_commands(commands: Any) -> None:
    evaluate = commands.add_parser(
        "eval", help="Accuracy against compute for strategies and budgets on a data set."
    )
    _add_common(evaluate)
    evaluate.add_argument(
        "--budgets",
        type=_budgets,
        default=[None],
        help="Comma-separated tts.budget.max_tokens values to run every configuration at "
        "('none': no budget).",
    )
    evaluate.add_argument("--output", type=Path, default=Path("eval-results"), help="Folder.")
    evaluate.add_argument("--title", default="", help="Plot title.")
    evaluate.set_defaults(handler=_eval)
    calibrate = commands.add_parser(
        "calibrate", help="Fit a compute_optimal policy table on a labelled data set."
    )
    _add_common(calibrate)
    calibrate.add_argument("--output", type=Path, required=True, help="The table file to write.")
    calibrate.add_argument(
        "--base-table", type=Path, default=None, help="Probe and bins to keep; default: shipped."
    )
    calibrate.add_argument(
        "--budget", type=int, default=None, help="Token budget options are chosen within."
    )
    calibrate.add_argument("--name", default="calibrated", help="The table's name.")
    calibrate.add_argument(
        "--prior-strength",
        type=float,
        default=None,
        help="Problems' worth of weight each bin gives an option's accuracy over all bins "
        "(0: trust each bin's own measurement; default 8).",
    )
    calibrate.add_argument(
        "--folds",
        type=int,
        default=0,
        help="Also cross-validate the fitted policy against the best fixed option on K folds "
        "of held-out problems (K >= 2).",
    )
    calibrate.add_argument(
        "--results",
        type=Path,
        default=None,
        help="Fit on this results.jsonl from an earlier calibration instead of running.",
    )
    calibrate.set_defaults(handler=_calibrate)


def _configs(args: argparse.Namespace, default: list[EvalConfig]) -> list[EvalConfig]:
    configs = list(args.configs or [])
    if args.strategies is not None:
        try:
            entries = json.loads(args.strategies.read_text(encoding="utf-8"))
            configs += [EvalConfig(str(e["label"]), dict(e["tts"])) for e in entries]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise SystemExit(f"--strategies {args.strategies}: {exc}") from None
    for level in (args.reasoning_effort or "").split(","):
        if level.strip():
            configs.append(EvalConfig(f"effort@{level.strip()}", {}, None, level.strip()))
    configs = configs or default
    labels = [c.label for c in configs]
    if len(set(labels)) != len(labels):
        raise SystemExit(f"configuration labels must be unique: {labels}")
    return configs


def _problems(args: argparse.Namespace) -> list[Problem]:
    problems: list[Problem] = []
    try:
        for spec in args.dataset:
            problems += load_dataset(spec)[: args.limit]
    except DatasetError as exc:
        raise SystemExit(str(exc)) from None
    ids = [p.id for p in problems]
    if len(set(ids)) != len(ids):
        raise SystemExit("problem ids repeat across the data sets; give each a distinct id")
    return problems


def _with_server(args: argparse.Namespace, work: Callable[[str], Awaitable[T]]) -> T:
    async def main() -> T:
        if not args.serve:
            return await work(args.server)
        from ponder.server.settings import Settings

        from .local import served

        async with served(Settings(port=args.port)) as (_, base_url):
            return await work(base_url)

    return asyncio.run(main())


def _eval_settings(args: argparse.Namespace, base_url: str) -> EvalSettings:
    return EvalSettings(
        base_url=base_url,
        model=args.model,
        api_key=args.api_key,
        concurrency=args.concurrency,
        max_tokens=args.max_tokens,
        temperature=args.temperature,
        instruction=args.instruction,
        system=args.system,
        seeds=args.seeds,
    )


def _run(
    args: argparse.Namespace, problems: Sequence[Problem], configs: Sequence[EvalConfig]
) -> list[dict[str, Any]]:
    async def work(base_url: str) -> list[dict[str, Any]]:
        settings = _eval_settings(args, base_url)
        return await run_eval(problems, configs, settings, progress=not args.no_progress)

    return _with_server(args, work)


def _eval(args: argparse.Namespace) -> int:
    from .report import markdown_table, plot_accuracy, summarize

    problems = _problems(args)
    configs = [
        EvalConfig(c.label, c.tts, budget, c.reasoning_effort)
        for c in _configs(args, DEFAULT_EVAL)
        for budget in args.budgets
    ]
    rows = _run(args, problems, configs)
    args.output.mkdir(parents=True, exist_ok=True)
    write_results(rows, args.output / "results.jsonl")
    summary = summarize(rows)
    table = markdown_table(summary)
    (args.output / "summary.md").write_text(table, encoding="utf-8")
    plot_accuracy(summary, args.output / "accuracy.png", args.title)
    sys.stdout.write(table)
    sys.stdout.write(f"results, summary.md and accuracy.png written to {args.output}\n")
    return 0


def _calibrate(args: argparse.Namespace) -> int:
    from ponder.strategies.policy import PolicyError, default_policy, load_policy

    from .calibration import (
        DEFAULT_PRIOR_STRENGTH,
        PROBE_LABEL,
        PROBE_TTS,
        CalibrationError,
        fit_policy,
    )
    from .runner import read_results

    if args.prior_strength is None:
        args.prior_strength = DEFAULT_PRIOR_STRENGTH
    try:
        base = default_policy() if args.base_table is None else load_policy(args.base_table)
    except PolicyError as exc:
        raise SystemExit(str(exc)) from None
    if args.results is not None:
        rows = read_results(args.results)
        source = {"results": str(args.results)}
    else:
        problems = _problems(args)
        candidates = _configs(args, DEFAULT_CANDIDATES)
        if any(c.label == PROBE_LABEL for c in candidates):
            raise SystemExit(f"{PROBE_LABEL!r} is the probe's label; name the candidate otherwise")
        rows = _run(args, problems, [EvalConfig(PROBE_LABEL, dict(PROBE_TTS)), *candidates])
        results = args.output.with_suffix(".results.jsonl")
        write_results(rows, results)
        source = {"datasets": args.dataset, "results": str(results)}
    try:
        table = fit_policy(
            rows,
            base,
            budget=args.budget,
            name=args.name,
            source=source,
            prior_strength=args.prior_strength,
        )
    except CalibrationError as exc:
        raise SystemExit(str(exc)) from None
    _write_atomically(args.output, table.model_dump_json(indent=2, exclude_none=True) + "\n")
    if args.folds:
        _report_cross_validation(rows, base, args)
    for b in table.bins:
        best = b.choose(table.budget)
        sys.stdout.write(
            f"{b.name} (difficulty <= {b.max_difficulty:g}, {b.problems} problems): "
            f"{json.dumps(best.tts)} accuracy {best.accuracy} tokens {best.tokens}\n"
        )
    sys.stdout.write(f"policy table written to {args.output}\n")
    return 0


def _report_cross_validation(
    rows: Sequence[dict[str, Any]], base: Any, args: argparse.Namespace
) -> None:
    from .calibration import CalibrationError
    from .cross_validation import cross_validate

    try:
        result = cross_validate(
            rows, base, folds=args.folds, budget=args.budget, prior_strength=args.prior_strength
        )
    except CalibrationError as exc:
        raise SystemExit(str(exc)) from None
    sys.stdout.write(
        f"{result.folds}-fold cross-validation on held-out problems:\n"
        f"  {result.policy.line()}\n  {result.best_fixed.line()} "
        f"(chosen per fold: {', '.join(result.fixed_choices)})\n"
    )


def _write_atomically(path: Path, text: str) -> None:
    """A server re-reading the table never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)
