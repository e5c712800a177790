"""`--reasoning-parser`: one of vLLM's own reasoning parsers, run in process.

The names are the ones vLLM's server accepts (`vllm serve --reasoning-parser`), and a plugin file
registers more, as `--reasoning-parser-plugin` does for vLLM. The parser splits a finished
candidate (`extract_reasoning`); its delimiters (`reasoning_start_str`, `reasoning_end_str`) are
what budget forcing appends and accounting looks for. Strategies only see the `ReasoningFormat`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ponder.core.reasoning import ReasoningFormat

__all__ = [
    "ReasoningParserError",
    "configured_reasoning_format",
    "load_reasoning_format",
    "reasoning_parser_names",
]

logger = logging.getLogger(__name__)


class ReasoningParserError(ValueError):
    """The named parser does not exist or cannot work with this model's tokenizer."""


def _manager(plugin: Path | None) -> Any:
    from vllm.reasoning import ReasoningParserManager

    if plugin is not None:
        ReasoningParserManager.import_reasoning_parser(str(plugin))
    return ReasoningParserManager


def reasoning_parser_names(plugin: Path | None = None) -> list[str]:
    """Every name `--reasoning-parser` accepts (vLLM's, and the plugin's)."""
    return list(_manager(plugin).list_registered())


def _chat_request() -> Any:
    """A stand-in for the request vLLM hands `extract_reasoning` (most parsers ignore it)."""
    from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest

    return ChatCompletionRequest(messages=[], model="ponder")


def load_reasoning_format(name: str, tokenizer: Any, plugin: Path | None = None) -> ReasoningFormat:
    """vLLM's reasoning parser `name`, built on the served model's tokenizer."""
    manager = _manager(plugin)
    try:
        parser_class = manager.get_reasoning_parser(name)
    except KeyError:
        known = ", ".join(manager.list_registered())
        raise ReasoningParserError(
            f"unknown reasoning parser {name!r}; vLLM's parsers: {known}"
        ) from None
    try:
        parser = parser_class(tokenizer)
    except Exception as exc:  # vLLM raises RuntimeError/ValueError for a foreign vocabulary
        raise ReasoningParserError(
            f"reasoning parser {name!r} does not fit this model's tokenizer: {exc}"
        ) from None
    end = parser.reasoning_end_str
    if not end:
        raise ReasoningParserError(
            f"reasoning parser {name!r} names no end-of-thinking text, which Ponder needs"
        )
    request = _chat_request()

    def split_text(text: str) -> tuple[str | None, str | None]:
        reasoning, content = parser.extract_reasoning(text, request)
        return reasoning, content

    logger.info("reasoning parser %s: thinking ends with %r", name, end)
    return ReasoningFormat(
        name=name, end=end, split_text=split_text, start=parser.reasoning_start_str
    )


def configured_reasoning_format(
    name: str | None, plugin: Path | None, engine: Any
) -> ReasoningFormat | None:
    """The format `--reasoning-parser` names for the served model, or None when unset."""
    if name is None:
        return None
    tokenizer = getattr(engine, "hf_tokenizer", None)
    if tokenizer is None:
        raise ReasoningParserError("this engine offers no tokenizer for a reasoning parser")
    return load_reasoning_format(name, tokenizer, plugin)
