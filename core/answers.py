"""Final answers: find one in a completion, normalise it, and group equivalent answers.

Voting and weighted best-of-N both need "do these two completions give the same answer?".
Numbers are compared exactly (as fractions); other answers by normalised text and, when they look
like mathematics, by `math-verify`. A completion that is one JSON object or array (structured
outputs) answers with the document itself, compared by value in a canonical form.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

__all__ = [
    "Tally",
    "answer_key",
    "answer_number",
    "canonical_json",
    "equivalent",
    "exact_totals",
    "extract_answer",
    "group_answers",
    "normalize_answer",
    "tally",
]

# Answers longer than this are not mathematics worth a symbolic comparison, and bound the time a
# pathological string can spend inside sympy.
_MAX_SYMBOLIC_CHARS = 120
_MAX_PLAIN_ANSWER_CHARS = 80
# Longer digit strings are compared as text: exact arithmetic on them is slow, and Python refuses
# to convert more than 4300 digits to an int.
_MAX_NUMBER_CHARS = 200
# Longer answers count as none when checked against a known answer: no known answer is that long.
_MAX_CHECKED_CHARS = 1000

# math-verify warns that its signal-based timeouts are off; that is deliberate (see below).
logging.getLogger("math_verify").setLevel(logging.ERROR)

_NUMBER = r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?|-?\d+(?:\.\d+)?(?:/\d+)?|-?\.\d+"
_ANSWER_PHRASE = re.compile(
    r"(?:final answer|the answer|answer)\s*(?:is|:|=)\s*(?:\$)?\s*([^\n$]+)", re.IGNORECASE
)
_HASHES = re.compile(r"####\s*([^\n]+)")
_NUMBER_RE = re.compile(_NUMBER)
# Answer keys of JSON documents start with this (no text or number key does).
_JSON_KEY = "json:"


def _canonical_value(value: object) -> object:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _canonical_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_canonical_value(v) for v in value]
    return value


def canonical_json(text: str) -> str | None:
    """The canonical form of `text` when it is, as a whole, one JSON object or array: keys
    sorted, no spaces, integral numbers written as integers. None for anything else, a bare
    number or string included (those are answers of the ordinary kind)."""
    stripped = text.strip()
    if not stripped or stripped[0] not in "{[":
        return None
    try:
        value = _canonical_value(json.loads(stripped))
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    except (ValueError, RecursionError):
        return None


def _last_boxed(text: str) -> str | None:
    start = text.rfind("\\boxed")
    if start < 0:
        return None
    brace = text.find("{", start)
    if brace < 0:
        return None
    depth = 0
    for i in range(brace, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[brace + 1 : i]
    return None


def extract_answer(text: str) -> str | None:
    """The final answer a completion states, or None when it states none.

    In order: the whole completion when it is a JSON document (its canonical form), the last
    `\\boxed{}`, the last "answer is ..." or "#### ..." phrase, the last number,
    and a short completion as a whole.
    """
    if (document := canonical_json(text)) is not None:
        return document
    if (boxed := _last_boxed(text)) is not None:
        return boxed.strip()
    for pattern in (_HASHES, _ANSWER_PHRASE):
        matches = pattern.findall(text)
        if matches:
            phrase = matches[-1].strip()
            numbers = _NUMBER_RE.findall(phrase)
            # "The answer is 42 apples." votes as 42.
            if numbers and len(phrase) > len(numbers[0]) + 1:
                return numbers[0]
            return phrase.rstrip(".").strip()
    numbers = _NUMBER_RE.findall(text)
    if numbers:
        return numbers[-1]
    stripped = text.strip()
    if stripped and len(stripped) <= _MAX_PLAIN_ANSWER_CHARS:
        return stripped
    return None


def normalize_answer(answer: str) -> str:
    """Surface normalisation: case, spacing, TeX wrappers, trailing punctuation, digit commas."""
    a = answer.strip().strip("$").strip()
    a = re.sub(r"\\text\{([^}]*)\}", r"\1", a)
    a = re.sub(r"\\(?:left|right|,|!|;)", "", a)
    a = a.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    a = a.rstrip(".").strip().lower()
    if re.fullmatch(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?", a):
        a = a.replace(",", "")
    return re.sub(r"\s+", " ", a)


def _as_number(answer: str) -> Fraction | None:
    if len(answer) > _MAX_NUMBER_CHARS:
        return None
    a = answer.replace(",", "") if re.fullmatch(r"-?[\d,]+(?:\.\d+)?", answer) else answer
    m = re.fullmatch(r"(-?\d+(?:\.\d+)?)(?:/(\d+))?|(-?\.\d+)", a)
    if m is None:
        frac = re.fullmatch(r"(-?)\\frac\{(\d+)\}\{(\d+)\}", a)
        if frac is None or int(frac.group(3)) == 0:
            return None
        value = Fraction(int(frac.group(2)), int(frac.group(3)))
        return -value if frac.group(1) else value
    if m.group(3):
        return Fraction(m.group(3))
    if m.group(2) is not None:
        return None if int(m.group(2)) == 0 else Fraction(m.group(1)) / int(m.group(2))
    return Fraction(m.group(1))


def answer_number(answer: str) -> Fraction | None:
    """The exact number a final answer states ("1,234", "-3/4", "\\frac{1}{2}", "$5$."), or
    None when it is not one number."""
    return _as_number(normalize_answer(answer))


def answer_key(answer: str) -> str:
    """A canonical key: equal keys mean equal answers (exact for numbers and JSON documents)."""
    if (document := canonical_json(answer)) is not None:
        return _JSON_KEY + document
    number = answer_number(answer)
    return f"#{number}" if number is not None else normalize_answer(answer)


def _looks_mathematical(key: str) -> bool:
    """Whether a key may equal another symbolically: not a number or a JSON document (those
    compare exactly), short, and with the marks of mathematics."""
    if key.startswith(("#", _JSON_KEY)):
        return False
    return len(key) <= _MAX_SYMBOLIC_CHARS and bool(re.search(r"[\\^_{}=+*/()]|\d", key))


@lru_cache(maxsize=4096)
def _symbolically_equal(a: str, b: str) -> bool:
    from math_verify import parse, verify

    # Timeouts off: math-verify's timeouts use signals, which work only on the main thread, and we
    # run in a worker thread; the length cap above bounds the work instead.
    gold = parse(f"${a}$", parsing_timeout=None)
    target = parse(f"${b}$", parsing_timeout=None)
    if not gold or not target:
        return False
    return bool(verify(gold, target, timeout_seconds=None))


def group_answers(answers: Sequence[str | None]) -> list[int | None]:
    """Assign each answer the index of its equivalence class (classes ordered by first sighting).

    None answers get no class. Blocking (sympy): call it off the event loop for many answers.
    """
    keys: list[str] = []
    groups: list[int | None] = []
    for answer in answers:
        if answer is None:
            groups.append(None)
            continue
        key = answer_key(answer)
        match = next((i for i, k in enumerate(keys) if k == key), None)
        if match is None and _looks_mathematical(key):
            match = next(
                (
                    i
                    for i, k in enumerate(keys)
                    if _looks_mathematical(k) and _symbolically_equal(k, key)
                ),
                None,
            )
        if match is None:
            keys.append(key)
            match = len(keys) - 1
        groups.append(match)
    return groups


def equivalent(answer: str | None, expected: str) -> bool:
    """Whether a final answer is the known one, by the same test votes group answers with
    (exact for numbers, math-verify for expressions). Blocking (sympy)."""
    if answer is None or len(answer) > _MAX_CHECKED_CHARS:
        return False
    first, second = group_answers([expected, answer])
    return first is not None and first == second


@dataclass(frozen=True)
class Tally:
    """Votes per answer class; `order` lists classes heaviest first, first-seen winning ties."""

    answers: tuple[str | None, ...]
    groups: tuple[int | None, ...]
    totals: dict[int, float]
    order: tuple[int, ...]

    @property
    def winner(self) -> int | None:
        return self.order[0] if self.order else None

    def class_rank(self, candidate: int) -> int:
        group = self.groups[candidate]
        return self.order.index(group) if group is not None else len(self.order)

    def rank(self, preferred: Sequence[int]) -> list[int]:
        """Candidates by their class's rank; within a class, in `preferred` order."""
        return sorted(preferred, key=self.class_rank)

    def rank_representatives(self) -> list[int]:
        """The first member of each class, heaviest class first, then everyone else in order."""
        firsts = [self.groups.index(g) for g in self.order]
        rest = [i for i in range(len(self.groups)) if i not in firsts]
        return firsts + rest

    def share(self, candidate: int) -> float | None:
        group = self.groups[candidate]
        total = sum(self.totals.values())
        return None if group is None or total <= 0 else self.totals[group] / total

    def summary(self) -> dict[str, float]:
        """Answer text (as first seen) to its total, heaviest first."""
        return {str(self.answers[self.groups.index(g)]): self.totals[g] for g in self.order}


def tally(answers: Sequence[str | None], weights: Sequence[float] | None = None) -> Tally:
    """Group equivalent answers and sum their weights (1 each by default). Blocking."""
    groups = group_answers(answers)
    totals: dict[int, float] = {}
    for i, group in enumerate(groups):
        if group is not None:
            totals[group] = totals.get(group, 0.0) + (1.0 if weights is None else weights[i])
    order = tuple(sorted(totals, key=lambda g: (-totals[g], g)))
    return Tally(tuple(answers), tuple(groups), totals, order)


def exact_totals(
    answers: Sequence[str | None], weights: Sequence[float] | None = None
) -> list[float]:
    """Vote totals per exact answer key, heaviest first, without symbolic equivalence.

    Cheap enough to run on the event loop after every finished sample (an adaptive vote's stop
    rule); equivalent expressions written differently count apart, so the leader's total is
    never overstated. The final vote uses `tally`.
    """
    totals: dict[str, float] = {}
    for i, answer in enumerate(answers):
        if answer is not None:
            key = answer_key(answer)
            totals[key] = totals.get(key, 0.0) + (1.0 if weights is None else weights[i])
    return sorted(totals.values(), reverse=True)
