"""Reasoning models: a candidate's thinking split from its answer, and per-candidate thinking caps.

A model that thinks before it answers (`<think>...</think>`, a channel) writes both into one
sequence. Votes, answer extraction and outcome verifiers must see only the answer, and the
response must return the thinking apart (`message.reasoning`). The server builds a
`ReasoningFormat` from one of vLLM's own reasoning parsers (the names vLLM's server accepts);
this module keeps strategies free of vLLM types: a format is two delimiters and a split function.

Token accounting needs how many of a sequence's tokens are answer: the shortest prefix of its
token ids whose text holds the end delimiter is the thinking, the rest the answer. It is found
by bisection over decoded prefixes, so it is exact whatever the tokenizer does with the delimiter.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .engine import GeneratedSequence

__all__ = [
    "ReasoningFormat",
    "StreamSplitter",
    "ThinkingBudget",
    "split_sequence",
    "thinking_length",
]

# (full generated text) -> (reasoning or None, answer or None), as vLLM's `extract_reasoning`.
SplitText = Callable[[str], tuple[str | None, str | None]]
Decode = Callable[[Sequence[int]], str]


@dataclass(frozen=True)
class ReasoningFormat:
    """How one model family delimits its thinking, and how its text splits."""

    name: str
    # The text that ends the thinking; budget forcing appends it, accounting looks for it.
    end: str
    split_text: SplitText
    start: str | None = None


@dataclass(frozen=True)
class ThinkingBudget:
    """Budget forcing per candidate (Muennighoff et al. 2025, "s1")."""

    # Most thinking tokens; at the cap the end delimiter is appended and the candidate answers.
    max_tokens: int | None = None
    # Fewest thinking tokens; an earlier end of thinking is replaced by `wait` and continued.
    min_tokens: int = 0
    wait: str = "Wait"
    # How often one candidate's early end may be replaced, so a model that insists still ends.
    max_waits: int = 8

    @property
    def active(self) -> bool:
        return self.max_tokens is not None or self.min_tokens > 0


def thinking_length(token_ids: Sequence[int], end: str, decode: Decode) -> int | None:
    """Tokens up to and including the end delimiter; None when the text does not hold it."""
    if not token_ids or end not in decode(token_ids):
        return None
    low, high = 1, len(token_ids)
    while low < high:  # the shortest prefix whose text holds `end`
        middle = (low + high) // 2
        if end in decode(token_ids[:middle]):
            high = middle
        else:
            low = middle + 1
    return low


def split_sequence(
    sequence: GeneratedSequence, fmt: ReasoningFormat, decode: Decode
) -> GeneratedSequence:
    """The sequence with `text` the answer, `reasoning` the thinking and `content_tokens` set.

    A sequence already split comes back unchanged, so every layer may call this.
    """
    if sequence.content_tokens is not None:
        return sequence
    reasoning, content = fmt.split_text(sequence.text)
    content = content or ""
    if reasoning is None:
        answer_tokens = sequence.num_tokens
    else:
        thought = thinking_length(sequence.token_ids, fmt.end, decode)
        answer_tokens = 0 if thought is None else sequence.num_tokens - thought
    return dataclasses.replace(
        sequence, text=content, reasoning=reasoning, content_tokens=answer_tokens
    )


class StreamSplitter:
    """Splits a streamed sequence's growing text into reasoning and answer deltas.

    Each delta re-splits the text so far with the format's own split and sends what is new on
    either side; text already sent is never taken back, so a tail that may be the start of a
    delimiter waits for the next delta (or the last one) before it is sent.
    """

    def __init__(self, fmt: ReasoningFormat) -> None:
        self.fmt = fmt
        self.text = ""
        self.sent_reasoning = ""
        self.sent_content = ""

    def _settled(self) -> str:
        """The text without a tail that could still grow into a delimiter."""
        for delimiter in (self.fmt.start, self.fmt.end):
            for m in range(len(delimiter or "") - 1, 0, -1):
                if delimiter and self.text.endswith(delimiter[:m]):
                    return self.text[:-m]
        return self.text

    def feed(self, delta: str, *, last: bool = False) -> tuple[str, str]:
        """(new reasoning, new answer) after `delta`; `last` sends everything held back."""
        self.text += delta
        reasoning, content = self.fmt.split_text(self.text if last else self._settled())
        thinking = self._new("sent_reasoning", reasoning or "")
        return thinking, self._new("sent_content", content or "")

    def _new(self, side: str, whole: str) -> str:
        sent: str = getattr(self, side)
        if len(whole) <= len(sent) or not whole.startswith(sent):
            return ""
        setattr(self, side, whole)
        return whole[len(sent) :]
