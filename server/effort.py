"""A request's reasoning fields become its `tts`: `reasoning_effort` presets, thinking budgets.

Both chat completions and the Responses adapter (whose `reasoning.effort` becomes the chat
request's `reasoning_effort`) are planned through here, so every endpoint dials compute the same
way. The rules:

- `reasoning_effort` picks a preset (strategies/effort.py). Its `tts` fields fill in what the
  request's own `tts` leaves out; a request that names a strategy (in `tts` or `MODEL@STRATEGY`)
  runs that strategy and the preset is not applied. The preset's temperature applies when the
  request sets none.
- `thinking_token_budget` (vLLM's name; -1 is no cap) is `tts.thinking_budget`.
- Thinking fields need a reasoning parser: asked for explicitly without one, they are refused;
  from a preset, they are dropped (the same presets serve models that do not think).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ponder.strategies.effort import (
    THINKING_FIELDS,
    EffortPresets,
    PresetError,
    default_presets,
    load_presets,
)
from ponder.verifiers.base import Verifier

from .errors import APIError

__all__ = ["EffortChoice", "apply_reasoning_fields", "load_effort_presets"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EffortChoice:
    """What `reasoning_effort` did to a request, as the `tts` block reports it."""

    level: str
    presets: str
    version: int
    applied: bool
    temperature: float | None = None

    def report(self) -> dict[str, Any]:
        return {
            "reasoning_effort": self.level,
            "presets": self.presets,
            "version": self.version,
            "applied": self.applied,
        }


def load_effort_presets(
    path: Path | None, verifiers: Mapping[str, Verifier], max_tts_n: int
) -> EffortPresets:
    """The presets the server serves, checked against its verifiers and caps.

    An operator's file must pass; the shipped one only warns (its wider levels then fail per
    request with a 400 that names the cap).
    """
    presets = default_presets() if path is None else load_presets(path)
    problems = []
    missing = sorted(presets.verifier_names() - set(verifiers))
    if missing:
        problems.append(f"verifiers not loaded: {', '.join(missing)}")
    if presets.widest() > max_tts_n:
        problems.append(f"explores {presets.widest()} candidates; --max-tts-n is {max_tts_n}")
    if problems:
        message = f"effort presets {presets.name!r}: {'; '.join(problems)}"
        if path is not None:
            raise PresetError(message)
        logger.warning("%s", message)
    return presets


def apply_reasoning_fields(
    tts: dict[str, Any],
    *,
    strategy_named: bool,
    effort: str | None,
    thinking_token_budget: int | None,
    presets: EffortPresets,
    temperature_set: bool,
    can_think: bool,
) -> tuple[dict[str, Any], EffortChoice | None]:
    """The request's `tts` with its reasoning fields folded in, and the preset choice."""
    tts = dict(tts)
    if thinking_token_budget is not None:
        cap = None if thinking_token_budget == -1 else thinking_token_budget
        if "thinking_budget" in tts and tts["thinking_budget"] != cap:
            raise APIError(
                400,
                "thinking_token_budget and tts.thinking_budget disagree; send one",
                param="thinking_token_budget",
            )
        tts["thinking_budget"] = cap
    if not can_think:
        for name in THINKING_FIELDS:
            value = tts.get(name)
            if value is None or (value == 0 and name == "min_thinking_tokens"):
                continue
            param = f"tts.{name}"
            if name == "thinking_budget" and thinking_token_budget is not None:
                param = "thinking_token_budget"
            raise APIError(
                400,
                f"{param} needs a reasoning model: start the server with --reasoning-parser",
                param=param,
            )
    if effort is None:
        return tts, None
    preset = presets.presets[effort]  # type: ignore[index]
    applied = not strategy_named and "strategy" not in tts
    choice = EffortChoice(
        effort,
        presets.name,
        presets.version,
        applied,
        preset.temperature if applied and not temperature_set else None,
    )
    if not applied:
        return tts, choice
    from_preset = {k: v for k, v in preset.tts.items() if can_think or k not in THINKING_FIELDS}
    return {**from_preset, **tts}, choice
