"""Evaluation data sets: JSONL files and `reasoning-gym` generators, each problem with its checker.

A problem is checked by its data set's own scorer where it has one (reasoning-gym's
`score_answer`), else by final-answer equivalence with math-verify, the same test Ponder's voting
uses. Generators make data offline from a seed, so an evaluation is reproducible and downloads
nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from ponder.core.answers import equivalent

__all__ = ["DatasetError", "Problem", "load_dataset"]

GENERATOR_PREFIX = "rg:"


class DatasetError(ValueError):
    """A data set that cannot be read; the message says where and why."""


@dataclass(frozen=True)
class Problem:
    id: str
    question: str
    answer: str
    difficulty: Any = None
    # Whether a final answer (None: the model stated none) is right. Blocking (math-verify).
    check: Callable[[str | None], bool] = field(default=lambda answer: False, compare=False)


def _matcher(expected: str) -> Callable[[str | None], bool]:
    return lambda answer: equivalent(answer, expected)


def _from_jsonl(path: Path) -> list[Problem]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise DatasetError(f"cannot read {path}: {exc.strerror}") from None
    problems = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{path}:{number}: not JSON ({exc.msg})") from None
        if not isinstance(row, dict) or not isinstance(row.get("question"), str):
            raise DatasetError(f"{path}:{number}: needs a string 'question'")
        if "answer" not in row or isinstance(row["answer"], dict | list):
            raise DatasetError(f"{path}:{number}: needs an 'answer' (a string or number)")
        expected = str(row["answer"])
        problems.append(
            Problem(
                id=str(row.get("id", f"{path.stem}-{number}")),
                question=row["question"],
                answer=expected,
                difficulty=row.get("difficulty"),
                check=_matcher(expected),
            )
        )
    if not problems:
        raise DatasetError(f"{path} holds no problems")
    return problems


def _config_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _from_generator(spec: str) -> list[Problem]:
    """`rg:chain_sum?size=20&seed=3&min_terms=2`: a reasoning-gym data set and its config."""
    try:
        import reasoning_gym
    except ImportError:
        raise DatasetError("reasoning-gym is not installed (pip install reasoning-gym)") from None
    name, _, query = spec.removeprefix(GENERATOR_PREFIX).partition("?")
    config = {k: _config_value(v) for k, v in parse_qsl(query, keep_blank_values=True)}
    config.setdefault("size", 20)
    config.setdefault("seed", 0)
    try:
        dataset = reasoning_gym.create_dataset(name, **config)
    except Exception as exc:  # reasoning-gym raises many kinds for a bad name or config
        raise DatasetError(f"cannot create reasoning-gym data set {spec!r}: {exc}") from None

    def scorer(entry: dict[str, Any]) -> Callable[[str | None], bool]:
        return lambda a: a is not None and dataset.score_answer(a, entry) >= 1.0

    return [
        Problem(
            id=f"{name}-{config['seed']}-{i}",
            question=entry["question"],
            answer=str(entry["answer"]),
            difficulty=entry.get("metadata", {}).get("difficulty"),
            check=scorer(entry),
        )
        for i, entry in enumerate(dataset)
    ]


def load_dataset(spec: str) -> list[Problem]:
    """A JSONL path, or `rg:<name>?<config>` for a reasoning-gym generator."""
    if spec.startswith(GENERATOR_PREFIX):
        return _from_generator(spec)
    return _from_jsonl(Path(spec))
