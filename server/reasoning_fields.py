"""The reasoning fields of a chat request: OpenAI's `reasoning_effort` and vLLM's thinking fields.

Kept apart from `protocol.py` so the chat request mixes them in; `effort.py` turns them into
the request's `tts`.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from ponder.strategies.effort import EffortLevel

__all__ = ["ReasoningFields"]


class ReasoningFields(BaseModel):
    model_config = ConfigDict(extra="allow")

    reasoning_effort: EffortLevel | None = Field(
        None,
        description="How much test-time compute to spend: selects a preset (strategy, width, "
        "thinking cap) unless `tts` names a strategy; see --effort-presets.",
    )
    # vLLM's extensions.
    thinking_token_budget: int | None = Field(
        None,
        ge=-1,
        description="vLLM extension: most thinking tokens per candidate (-1: no cap); the same "
        "as tts.thinking_budget. Needs --reasoning-parser.",
    )
    include_reasoning: bool = Field(
        True, description="vLLM extension: return the thinking in `message.reasoning`."
    )
