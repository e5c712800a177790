"""`arithmetic`: check the arithmetic a solution writes down, exactly and without a model.

Small models slip at arithmetic more often than at planning, and a written equation such as
`17 + 25 = 43` can be checked for free. A step scores 1 when every arithmetic claim in it holds,
0 when any fails, and is left unjudged when it makes none.

Claims are found in the tokens of `arithmetic_parse` (which never evaluates text as code). The
search is deliberately conservative: text it cannot read with confidence (dates, ratios,
algebra, powers, units glued to numbers) is no claim at all, because an unjudged step costs
little and a step wrongly judged false costs a good answer.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from fractions import Fraction
from functools import lru_cache
from itertools import pairwise
from typing import ClassVar

from ponder.core.answers import answer_number, extract_answer, normalize_answer

from .arithmetic_parse import (
    EQ,
    HARD,
    LP,
    MAX_DIGITS,
    MAX_NESTING,
    MAX_OPERATORS,
    NUM,
    OP,
    OTHER,
    RP,
    SOFT,
    WORD,
    Expr,
    Token,
    equal,
    evaluate,
    tokenize,
)
from .base import Aggregation, Question, ScoringOptions, StepScore, VerifierKind
from .process import ProcessVerifier, StepBatch

__all__ = [
    "FINAL_ANSWER_UNIT",
    "MAX_DIGITS",
    "MAX_NESTING",
    "MAX_OPERATORS",
    "SLIPPED_ANSWER_SCORE",
    "ArithmeticVerifier",
    "answers_question",
    "check_claims",
    "question_value",
    "step_score",
]

# Starts the extra unit that scores the final answer; NUL cannot begin a stripped step of text.
FINAL_ANSWER_UNIT = "\x00final answer: "
# A right final answer after a false step (`min` aggregation).
SLIPPED_ANSWER_SCORE = 0.5

# A run of these tokens is where claims are looked for.
_IN_RUN = frozenset({NUM, OP, LP, RP, EQ})
# Quotes include the curly ones (U+201C/D, U+2018/9).
_OPENERS = frozenset("[{\"'\u201c\u2018<")
_CLOSERS = frozenset("]}\"'\u201d\u2019>.,;:?")
_SENTENCE = frozenset(".,;:?!")


def _runs(tokens: list[Token]) -> Iterator[tuple[Token | None, list[Token], Token | None]]:
    """Maximal runs of arithmetic tokens, each with the token before and after it."""
    i, n = 0, len(tokens)
    while i < n:
        if tokens[i].kind not in _IN_RUN:
            i += 1
            continue
        j = i
        while j < n and tokens[j].kind in _IN_RUN:
            j += 1
        yield (tokens[i - 1] if i else None), tokens[i:j], (tokens[j] if j < n else None)
        i = j


def _split(run: list[Token]) -> list[list[Token]]:
    parts: list[list[Token]] = [[]]
    for token in run:
        if token.kind == EQ:
            parts.append([])
        else:
            parts[-1].append(token)
    return parts


def _trim_start(part: list[Token], prev: Token | None) -> tuple[list[Token], Token | None]:
    """Drop brackets opened before the run; return the rest and what now precedes it."""
    # An unmatched ")" closes something that began before the run ("(a) 2 + 3", "f(x) + 1").
    depth, cut = 0, 0
    for k, token in enumerate(part):
        if token.kind == LP:
            depth += 1
        elif token.kind == RP:
            depth -= 1
            if depth < 0:
                depth, cut = 0, k + 1
    if cut:
        return part[cut:], part[cut - 1]
    # An unmatched "(" brackets the claim itself: "(2 + 3 = 5)".
    opens = sum(t.kind == LP for t in part)
    closes = sum(t.kind == RP for t in part)
    k = 0
    while k < len(part) and part[k].kind == LP and opens > closes:
        opens, k = opens - 1, k + 1
    return part[k:], (part[k - 1] if k else prev)


def _trim_end(part: list[Token], nxt: Token | None) -> tuple[list[Token], Token | None]:
    """Drop brackets closed after the run; return the rest and what now follows it."""
    # An unmatched "(" opens something after the expression: "= 5 (rounded)".
    depth, cut = 0, len(part)
    for k in range(len(part) - 1, -1, -1):
        if part[k].kind == RP:
            depth += 1
        elif part[k].kind == LP:
            depth -= 1
            if depth < 0:
                depth, cut = 0, k
    if cut < len(part):
        return part[:cut], part[cut]
    opens = sum(t.kind == LP for t in part)
    closes = sum(t.kind == RP for t in part)
    k = len(part)
    while k and part[k - 1].kind == RP and closes > opens:
        closes, k = closes - 1, k - 1
    return part[:k], nxt


def _clean_before(prev: Token | None, part: list[Token]) -> bool:
    """Whether the expression starts on its own rather than in the middle of something."""
    first = part[0]
    if first.kind == OP and first.text == "-":
        return _sign_ok(prev, part)
    if prev is None or prev.kind in (LP, SOFT):
        return True
    if prev.kind == HARD:
        return False
    return first.spaced or (prev.kind == OTHER and prev.text in _OPENERS)


def _sign_ok(prev: Token | None, part: list[Token]) -> bool:
    # "So -3 + 5" starts with a sign; in "x - 3 + 5" or "f(x) -3" the minus is a subtraction
    # whose left operand lies outside the run.
    if len(part) < 2 or part[1].spaced:
        return False
    if prev is None or prev.kind in (LP, SOFT):
        return True
    if prev.kind == WORD:
        return part[0].spaced and len(prev.text) > 1
    if prev.kind == OTHER:
        return prev.text in _OPENERS or (part[0].spaced and prev.text in _SENTENCE)
    return False


def _clean_after(nxt: Token | None) -> bool:
    """Whether the expression ends on its own: "= 5." yes, "= 5x", "= 12:30", "= 3^2" no."""
    if nxt is None or nxt.kind in (RP, SOFT):
        return True
    if nxt.kind == LP:
        return nxt.spaced
    if nxt.kind == HARD:
        return False
    return nxt.spaced or (nxt.kind == OTHER and nxt.text in _CLOSERS and not nxt.glued)


def _delimited(
    part: list[Token], prev: Token | None, nxt: Token | None, *, start: bool, end: bool
) -> Expr | None:
    """The expression at an end of a run, when it stands on its own and parses."""
    if end:
        part, nxt = _trim_end(part, nxt)
        if not part or not _clean_after(nxt):
            return None
    if start:
        part, prev = _trim_start(part, prev)
        if not part or not _clean_before(prev, part):
            return None
    return evaluate(part)


def check_claims(text: str) -> list[bool]:
    """Whether each arithmetic claim in `text` holds, in order.

    A claim is an equality whose left side has at least one binary operator: `17 + 25 = 42`.
    A chain `a = b = c` claims each adjacent equality, so the running-total style
    `2 + 3 = 5 + 1 = 6` is false (5 ≠ 6), as written. A part of a chain that is not readable
    arithmetic breaks the chain there.
    """
    results: list[bool] = []
    for prev, run, nxt in _runs(tokenize(text)):
        parts = _split(run)
        if len(parts) < 2:
            continue
        exprs = [
            _delimited(parts[0], prev, None, start=True, end=False),
            *(evaluate(p) for p in parts[1:-1]),
            _delimited(parts[-1], None, nxt, start=False, end=True),
        ]
        chain: list[Expr] = []
        for expr in [*exprs, None]:
            if expr is not None:
                chain.append(expr)
                continue
            if len(chain) > 1 and chain[0].binary_operators:
                results.extend(equal(a, b) for a, b in pairwise(chain))
            chain = []
    return results


def step_score(text: str) -> StepScore:
    """1.0 when every claim in the step holds, 0.0 when any fails, None when it makes none."""
    claims = check_claims(text)
    if not claims:
        return None
    return 1.0 if all(claims) else 0.0


# What may follow a trailing "=" in a question that asks for the value ("7 - 4 =", "3 * 4 = ?",
# "2 + 2 = ___"): the end, a line break, a question mark or a blank.
_ASKS_VALUE = frozenset("?_")
_DECIMALS = re.compile(r"\.([0-9]+)")


def _asked_expression(run: list[Token], prev: Token | None, nxt: Token | None) -> Expr | None:
    """The expression a run of a question asks about: all of it when it holds no "=", or what
    comes before a trailing "=" with nothing after it (generated arithmetic sets write
    "State the final answer to the following arithmetic problem: 6 - 7 =")."""
    equals = sum(t.kind == EQ for t in run)
    if equals == 0:
        return _delimited(run, prev, nxt, start=True, end=True)
    asks = nxt is None or nxt.kind == SOFT or (nxt.kind == OTHER and nxt.text in _ASKS_VALUE)
    if equals > 1 or run[-1].kind != EQ or not asks:
        # "If 2 + 3 = 5, ..." states something; it is not what is asked.
        return None
    return _delimited(run[:-1], prev, None, start=True, end=False)


@lru_cache(maxsize=256)
def question_value(text: str) -> Fraction | None:
    """The value of the one arithmetic expression a question asks about, if it holds exactly one
    and it has a value: "What is 37 + 45?" and "... arithmetic problem: 37 + 45 =" give 82."""
    found: list[Expr] = []
    for prev, run, nxt in _runs(tokenize(text)):
        expr = _asked_expression(run, prev, nxt)
        if expr is not None and expr.binary_operators:
            found.append(expr)
            if len(found) > 1:
                return None
    return found[0].value if found else None


def answers_question(answer: str, expected: Fraction) -> bool:
    """Whether a final answer is the question's value: exactly, or rounded to the places it shows
    when the value has no finite decimal form ("100 / 3" answered "33.33")."""
    number = answer_number(answer)
    if number is None:
        return False
    decimals = _DECIMALS.search(normalize_answer(answer))
    places = len(decimals.group(1)) if decimals else 0
    return equal(Expr(expected, 1, None), Expr(number, 0, places))


class ArithmeticVerifier(ProcessVerifier):
    """Scores each step by the arithmetic claims it makes (see `check_claims`).

    When the question asks about one arithmetic expression ("What is 37 + 45?", "Compute
    12*(3+4).", "State the final answer to the following arithmetic problem: 37 + 45 =",
    "37 + 45 = ?"), the answer gets one more unit after its steps, `FINAL_ANSWER_UNIT` followed
    by its extracted final answer, scoring 1.0 when that number is the expression's value (see
    `answers_question`) and 0.0 otherwise: a true claim that does not answer the question
    ("7 * 9 = 63.") is no evidence for the answer. So `aggregation="last"` asks "is the final
    answer right?", and the default `"min"` asks that first and "is every step's arithmetic
    right?" second: a wrong final answer scores 0.0, a right one 1.0, or
    `SLIPPED_ANSWER_SCORE` after a false step (a plain minimum would score that right answer
    as low as a wrong one). Answers with no numeric final answer get no extra unit, and `min`
    is then the plain minimum over the steps.
    """

    kind: ClassVar[VerifierKind] = "programmatic"
    family: ClassVar[str] = "arithmetic"
    description: ClassVar[str] = (
        "exact check of the arithmetic each step writes (17 + 25 = 42), and of the final "
        "answer when the question is one arithmetic expression"
    )
    default_aggregation: ClassVar[Aggregation] = "min"

    def __init__(self, name: str = "arithmetic", *, aggregation: Aggregation | None = None) -> None:
        super().__init__(name, aggregation=aggregation)

    def aggregate(
        self, units: Sequence[str], scores: Sequence[StepScore], how: Aggregation
    ) -> float:
        # With the final answer checked, `min` puts the answer first: a step slip before a right
        # answer halves its score rather than zeroing it, so a right answer still outranks every
        # wrong one (on this model most right answers of multi-step sums follow some slip).
        if how != "min" or not scores or not units[-1].startswith(FINAL_ANSWER_UNIT):
            return super().aggregate(units, scores, how)
        final = scores[-1]
        if final is None:
            return super().aggregate(units, scores, how)
        if final < 1.0:
            return 0.0
        slipped = any(s is not None and s < 1.0 for s in scores[:-1])
        return SLIPPED_ANSWER_SCORE if slipped else 1.0

    def units(self, question: Question, steps: list[str]) -> list[str]:
        if not steps or question_value(question.text) is None:
            return steps
        answer = extract_answer("\n\n".join(steps))
        if answer is None or answer_number(answer) is None:
            return steps
        return [*steps, f"{FINAL_ANSWER_UNIT}{answer}"]

    async def score_steps(
        self,
        question: Question,
        answers: Sequence[Sequence[str]],
        starts: Sequence[int],
        *,
        request_id: str,
        options: ScoringOptions,
    ) -> StepBatch:
        # Pure CPU and bounded per character: cheaper inline than a hop to a thread.
        expected = question_value(question.text)
        scores: list[list[StepScore]] = []
        for units, start in zip(answers, starts, strict=True):
            row: list[StepScore] = []
            # A step of the answer could start with the marker too; the final-answer unit is
            # the one `units` added.
            final = (
                expected is not None
                and units[-1].startswith(FINAL_ANSWER_UNIT)
                and self.units(question, list(units[:-1])) == list(units)
            )
            for k in range(start, len(units)):
                unit = units[k]
                if final and expected is not None and k == len(units) - 1:
                    answer = unit[len(FINAL_ANSWER_UNIT) :]
                    row.append(1.0 if answers_question(answer, expected) else 0.0)
                else:
                    row.append(step_score(unit))
            scores.append(row)
        return StepBatch(scores, tokens=0)
