"""`reasoning_effort` presets: each OpenAI effort level mapped to a strategy, width and budget.

Any OpenAI client can send `reasoning_effort`; Ponder makes it buy test-time compute. The mapping
is a small JSON file like the policy table (`policies/effort.json` ships, measured on the
embedded model; `--effort-presets` points at an operator's own). A preset is a `tts` object (the
strategy and its parameters, a thinking cap for reasoning models) and, optionally, the
temperature used when the request sets none. An explicit `tts` in the request wins over it.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ponder.core.errors import StrategyInputError

from .base import StrategyParams
from .registry import strategy_class

__all__ = [
    "EFFORT_LEVELS",
    "EffortLevel",
    "EffortPreset",
    "EffortPresets",
    "PresetError",
    "default_presets",
    "load_presets",
    "preset_params",
]

# OpenAI's values, in order of effort, and vLLM's extra `max` (DeepSeek V4's) on top.
EffortLevel = Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"]
EFFORT_LEVELS: tuple[str, ...] = get_args(EffortLevel)
# The tts fields that only mean something with a reasoning parser (dropped from a preset without).
THINKING_FIELDS = ("thinking_budget", "min_thinking_tokens")


class PresetError(ValueError):
    """A presets file that cannot be read or used."""


class EffortPreset(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tts: dict[str, Any] = Field(description="The request's `tts` object this level stands for.")
    temperature: float | None = Field(
        None, ge=0.0, le=2.0, description="Sampling temperature when the request sets none."
    )
    description: str = ""


class EffortPresets(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = 1
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    description: str = ""
    presets: dict[EffortLevel, EffortPreset]

    @model_validator(mode="after")
    def _every_level(self) -> EffortPresets:
        missing = [level for level in EFFORT_LEVELS if level not in self.presets]
        if missing:
            raise ValueError(f"no preset for reasoning_effort {', '.join(missing)}")
        for level, preset in self.presets.items():
            preset_params(preset.tts, level)
        return self

    def verifier_names(self) -> set[str]:
        return {
            name
            for level, p in self.presets.items()
            for name in preset_params(p.tts, level).verifier_names().values()
        }

    def widest(self) -> int:
        return max(preset_params(p.tts, lv).candidates() for lv, p in self.presets.items())


def preset_params(tts: dict[str, Any], level: str) -> StrategyParams:
    """A preset's `tts` validated by its strategy's parameters (PresetError if it fails)."""
    name = tts.get("strategy", "none")
    try:
        return strategy_class(str(name)).Params.model_validate(tts)
    except StrategyInputError as exc:
        raise PresetError(f"preset {level!r}: {exc}") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise PresetError(f"preset {level!r}: tts.{where}: {first['msg']}") from None


def parse_presets(text: str, source: str) -> EffortPresets:
    try:
        return EffortPresets.model_validate(json.loads(text))
    except json.JSONDecodeError as exc:
        raise PresetError(f"{source} is not JSON: {exc}") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise PresetError(f"{source}: {where}: {first['msg']}") from None


def load_presets(path: Path) -> EffortPresets:
    try:
        return parse_presets(path.read_text(encoding="utf-8"), str(path))
    except OSError as exc:
        raise PresetError(f"cannot read the effort presets {path}: {exc.strerror}") from None


@cache
def default_presets() -> EffortPresets:
    """The presets that ship with Ponder (measured on the embedded model)."""
    text = resources.files("ponder.strategies").joinpath("policies/effort.json").read_text()
    return parse_presets(text, "the default effort presets")
