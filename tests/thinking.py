"""A thinking model for unit tests: `<think>...</think>` in the scripted engine's texts.

`THINK` splits as vLLM's `qwen3` parser does (no end of thinking: all thinking), so strategy tests
need no vLLM; `ThinkingEngine` offers a tokenizer, so the server can load vLLM's own `qwen3` parser
in process on it (`--reasoning-parser qwen3`).
"""

from __future__ import annotations

from dataclasses import dataclass

from ponder.core.reasoning import ReasoningFormat
from tests.scripted import ScriptedEngine

__all__ = ["THINK", "ThinkingEngine"]


def _split(text: str) -> tuple[str | None, str | None]:
    before, opened, after = text.partition("<think>")
    text = after if opened else before
    if "</think>" not in text:
        return text, None
    thinking, _, answer = text.partition("</think>")
    return thinking, answer or None


THINK = ReasoningFormat(name="think", end="</think>", split_text=_split, start="<think>")


class _Vocabulary:
    """What vLLM's text-based parsers read of a tokenizer: the vocabulary."""

    def get_vocab(self) -> dict[str, int]:
        return {}


@dataclass
class ThinkingEngine(ScriptedEngine):
    @property
    def hf_tokenizer(self) -> _Vocabulary:
        return _Vocabulary()
