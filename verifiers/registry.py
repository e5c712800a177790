"""Verifier names mapped to lazily imported classes, and the set loaded at start-up.

Importing a verifier family may pull heavy dependencies (a reward model's code), so nothing is
imported until a verifier of that family is loaded.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["DEFAULT_VERIFIERS", "VERIFIERS", "verifier_class"]

VERIFIERS: dict[str, str] = {
    "confidence": "ponder.verifiers.confidence:ConfidenceVerifier",
    "self_certainty": "ponder.verifiers.self_certainty:SelfCertaintyVerifier",
    "arithmetic": "ponder.verifiers.arithmetic:ArithmeticVerifier",
    "reference": "ponder.verifiers.reference:ReferenceVerifier",
    "self_judge": "ponder.verifiers.self_judge:SelfJudgeVerifier",
    "step_judge": "ponder.verifiers.step_judge:StepJudgeVerifier",
    "genselect": "ponder.verifiers.genselect:GenSelectVerifier",
    "orm": "ponder.verifiers.orm:OutcomeRewardModel",
    "qwen_prm": "ponder.verifiers.qwen_prm:QwenPRM",
    "math_shepherd_prm": "ponder.verifiers.math_shepherd_prm:MathShepherdPRM",
    "rlhflow_prm": "ponder.verifiers.rlhflow_prm:RLHFlowPRM",
}

# Loaded with every model: they need nothing beyond the policy engine.
DEFAULT_VERIFIERS: tuple[str, ...] = (
    "confidence",
    "self_certainty",
    "self_judge",
    "step_judge",
    "genselect",
    "arithmetic",
    "reference",
)


def verifier_class(name: str) -> Any:
    try:
        target = VERIFIERS[name]
    except KeyError:
        known = ", ".join(sorted(VERIFIERS))
        raise KeyError(f"unknown verifier {name!r}; known verifiers: {known}") from None
    module_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(module_name), attr)
