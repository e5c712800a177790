"""Reading arithmetic out of prose: tokens, and the exact value of an expression.

The `arithmetic` verifier finds claims in the token stream made here; this module only says what
each piece of text is and what an expression is worth. Nothing is evaluated as code: numbers,
+ - * / (with their typographic and LaTeX spellings) and parentheses are read by a hand-written
tokenizer and recursive-descent parser and computed with `Fraction`, under fixed bounds, so a
hostile string costs time linear in its length.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

__all__ = [
    "EQ",
    "HARD",
    "LP",
    "MAX_DIGITS",
    "MAX_NESTING",
    "MAX_OPERATORS",
    "NUM",
    "OP",
    "OTHER",
    "RP",
    "SOFT",
    "WORD",
    "Expr",
    "Token",
    "equal",
    "evaluate",
    "tokenize",
]

MAX_DIGITS = 30
MAX_OPERATORS = 32
MAX_NESTING = 16

# Token kinds. A run of NUM, OP, LP, RP and EQ tokens is where claims are looked for; SOFT
# tokens (line breaks, markdown emphasis, math delimiters) end a run harmlessly; WORD and OTHER
# end it and, when touching it, mean the run is part of something larger ("x-3", "12:30");
# HARD tokens (powers) always do.
NUM, OP, LP, RP, EQ, SOFT, WORD, OTHER, HARD = (
    "num", "op", "(", ")", "=", "soft", "word", "other", "hard",
)  # fmt: skip

_TOKEN = re.compile(
    r"""
    (?P<newline>[^\S\n]*\n\s*)
    |(?P<space>\s+)
    |(?P<num>[0-9]{1,3}(?:,[0-9]{3})+(?:\.[0-9]+)?(?![0-9])|[0-9]+(?:\.[0-9]+)?|\.[0-9]+)
    |(?P<lp>\(|\\left\()
    |(?P<rp>\)|\\right\))
    |(?P<eq>=)
    |(?P<op>[-+\u2212\u00d7\u00b7\u22c5\u00f7/]|\\(?:times|cdot|div)(?![A-Za-z]))
    |(?P<stars>\*+)
    |(?P<hard>\^)
    |(?P<money>[$€£](?=[0-9.]))
    |(?P<soft>\\[()\[\]]|[$€£])
    |(?P<word>[^\W\d_]+)
    |(?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)
# The typographic minus, times, middle dot, dot operator and division sign, as escapes.
_OPERATORS = {
    "+": "+", "-": "-", "\u2212": "-", "*": "*", "\u00d7": "*", "\u00b7": "*", "\u22c5": "*",
    "\\times": "*", "\\cdot": "*", "/": "/", "\u00f7": "/", "\\div": "/",
}  # fmt: skip
_NEXT_VISIBLE = re.compile(r"\s*(\S)")
_STARTS_OPERAND = frozenset("0123456789(-\u2212$€£")
_DIGITS_OR_PAREN = frozenset("0123456789(")


@dataclass(frozen=True, slots=True)
class Token:
    """One piece of text: its kind (NUM, OP, ...) and its text, operators in canonical form."""

    kind: str
    text: str
    # Whitespace (or the start of the text) comes right before it.
    spaced: bool
    # A letter or digit comes right after it.
    glued: bool


@dataclass(frozen=True, slots=True)
class Expr:
    """A parsed expression."""

    # None when the expression divides by zero: it equals nothing.
    value: Fraction | None
    binary_operators: int
    # Decimal places when the expression is a bare number ("33.33"), else None.
    places: int | None


class _Malformed(Exception):
    """Not arithmetic this parser reads (or beyond its bounds)."""


def tokenize(text: str) -> list[Token]:
    """The tokens of `text`, in one pass; what a "*" or an "x" is depends on its neighbours."""
    tokens: list[Token] = []
    spaced = True
    for m in _TOKEN.finditer(text):
        kind, raw, end = m.lastgroup or OTHER, m.group(), m.end()
        if kind == "space":
            spaced = True
            continue
        if kind == "money":
            # "$5" reads as 5; a space before "$" counts as a space before the number.
            continue
        prev = tokens[-1] if tokens else None
        after = text[end : end + 1]
        operand_before = prev is not None and prev.kind in (NUM, RP)
        if kind == "newline":
            kind, raw = SOFT, "\n"
        elif kind == "op":
            raw = _OPERATORS[raw]
            line_start = prev is None or prev.text == "\n"
            if line_start and raw in ("+", "-") and after.isspace():
                kind = SOFT  # a list bullet, not a sign
        elif kind == "stars":
            visible = _next_visible(text, end)
            if operand_before and visible in _STARTS_OPERAND:
                kind, raw = (OP, "*") if raw == "*" else (HARD, raw)  # "**" is a power
            elif (spaced and after and not after.isspace()) or (not spaced and not after.isalnum()):
                kind = SOFT  # markdown emphasis around a number: "**42**", "is *7*"
            elif prev is None or prev.text == "\n":
                kind = SOFT  # a list bullet
            else:
                kind = HARD  # "x * 2", "x**2": a variable's product or power
        elif kind == "word" and raw == "x" and operand_before:
            # "3 x 4", "3x4"; but never "2x + 3" or "2x - 1", where x is a variable.
            if _next_visible(text, end) in _DIGITS_OR_PAREN:
                kind, raw = OP, "*"
        elif kind in ("lp", "rp", "eq"):
            kind = {"lp": LP, "rp": RP, "eq": EQ}[kind]
        tokens.append(Token(kind, raw, spaced, after.isalnum()))
        spaced = kind == SOFT and raw == "\n"
    return tokens


def _next_visible(text: str, pos: int) -> str:
    m = _NEXT_VISIBLE.match(text, pos)
    return m.group(1) if m else ""


def evaluate(part: Sequence[Token]) -> Expr | None:
    """The expression these tokens spell, or None when they spell none within the bounds."""
    if not part or sum(t.kind == OP for t in part) > MAX_OPERATORS:
        return None
    parser = _Parser(part)
    try:
        value = parser.parse()
    except _Malformed:
        return None
    places = None
    literal = part[1:] if len(part) == 2 and part[0].text == "-" else part
    if len(literal) == 1:
        places = len(literal[0].text.partition(".")[2])
    return Expr(value, parser.binary_operators, places)


def _number(text: str) -> Fraction:
    plain = text.replace(",", "")
    whole, _, decimals = plain.partition(".")
    # A leading zero ("01", "007") is a date or a code, not a quantity.
    if len(whole) + len(decimals) > MAX_DIGITS or (len(whole) > 1 and whole[0] == "0"):
        raise _Malformed
    return Fraction(plain)


class _Parser:
    """sum := product (("+" | "-") product)*; product := unary (("*" | "/") unary)*;
    unary := "-"* atom; atom := NUM | "(" sum ")". None is the value of a division by zero."""

    def __init__(self, tokens: Sequence[Token]) -> None:
        self.tokens = tokens
        self.pos = 0
        self.binary_operators = 0

    def parse(self) -> Fraction | None:
        value = self._sum(0)
        if self.pos != len(self.tokens):
            raise _Malformed
        return value

    def _operator(self, *texts: str) -> str | None:
        if self.pos < len(self.tokens):
            token = self.tokens[self.pos]
            if token.kind == OP and token.text in texts:
                self.pos += 1
                return token.text
        return None

    def _sum(self, depth: int) -> Fraction | None:
        value = self._product(depth)
        while (op := self._operator("+", "-")) is not None:
            self.binary_operators += 1
            right = self._product(depth)
            if value is not None and right is not None:
                value = value + right if op == "+" else value - right
            else:
                value = None
        return value

    def _product(self, depth: int) -> Fraction | None:
        value = self._unary(depth)
        while (op := self._operator("*", "/")) is not None:
            self.binary_operators += 1
            right = self._unary(depth)
            if value is None or right is None or (op == "/" and right == 0):
                value = None
            else:
                value = value * right if op == "*" else value / right
        return value

    def _unary(self, depth: int) -> Fraction | None:
        negate = False
        while self._operator("-") is not None:
            negate = not negate
        value = self._atom(depth)
        return -value if negate and value is not None else value

    def _atom(self, depth: int) -> Fraction | None:
        if self.pos >= len(self.tokens):
            raise _Malformed
        token = self.tokens[self.pos]
        self.pos += 1
        if token.kind == NUM:
            return _number(token.text)
        if token.kind != LP or depth >= MAX_NESTING:
            raise _Malformed
        value = self._sum(depth + 1)
        if self.pos >= len(self.tokens) or self.tokens[self.pos].kind != RP:
            raise _Malformed
        self.pos += 1
        return value


def equal(left: Expr, right: Expr) -> bool:
    """Exact equality, except that a value with no finite decimal form may be written rounded to
    the places shown ("100 / 3 = 33.33", but not "10 / 4 = 2.6" or "10 / 3 = 3")."""
    if left.value is None or right.value is None:
        return False
    if left.value == right.value:
        return True
    if not right.places or _terminates(left.value):
        return False
    return abs(left.value - right.value) * 2 * 10**right.places <= 1


def _terminates(value: Fraction) -> bool:
    d = value.denominator
    for p in (2, 5):
        while d % p == 0:
            d //= p
    return d == 1
