"""Helpers for applications that keep the official `openai` client.

`openai` sends unknown request fields through `extra_body` and keeps unknown response fields in
`model_extra`; these turn Ponder's typed options into the one and read the other back typed. They
work on any pydantic object with `model_extra`, so this package does not need `openai` itself.
"""

from __future__ import annotations

from typing import Any

from ._requests import StrategyArg, tts_object
from .models import TTSBlock, TTSProgress

__all__ = ["extra_body", "progress_of", "tts_of"]


def extra_body(strategy: StrategyArg) -> dict[str, Any]:
    """`client.chat.completions.create(..., extra_body=extra_body(BestOfN(n=8)))`."""
    tts = tts_object(strategy)
    return {} if tts is None else {"tts": tts}


def _extra(obj: Any) -> dict[str, Any]:
    extra = getattr(obj, "model_extra", None)
    return extra if isinstance(extra, dict) else {}


def tts_of(response: Any) -> TTSBlock | None:
    """The typed `tts` block of an `openai` response (or of a stream's usage chunk)."""
    block = _extra(response).get("tts")
    return TTSBlock.model_validate(block) if block is not None else None


def progress_of(chunk: Any) -> TTSProgress | None:
    """The search progress an `openai` stream chunk carries, or None for other chunks."""
    progress = _extra(chunk).get("tts_progress")
    return TTSProgress.model_validate(progress) if progress is not None else None
