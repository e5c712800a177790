"""The compute-optimal policy table: difficulty bins mapped to strategies, as a small JSON file.

`compute_optimal` estimates a question's difficulty with a probe, finds its bin here, and runs the
bin's best option that fits the request's token budget. Ponder ships a default table
(`policies/default.json`); `ponder calibrate` fits one for a model and data set. The file carries a
format `version` so that an old server refuses a table it cannot read instead of misreading it.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ponder.core.errors import StrategyInputError

from .base import StrategyParams
from .difficulty import ESTIMATORS
from .registry import strategy_class

__all__ = [
    "MAX_BINS",
    "PolicyBin",
    "PolicyError",
    "PolicyOption",
    "PolicyTable",
    "ProbeSpec",
    "default_policy",
    "load_policy",
    "option_params",
]

# Bin names become a metric label: a handful keeps the series count low.
MAX_BINS = 8
_NOT_NESTABLE = {"compute_optimal"}


class PolicyError(ValueError):
    """A policy table that cannot be read or used."""


class ProbeSpec(BaseModel):
    """How difficulty is estimated: a few full samples, then an estimator over them."""

    model_config = ConfigDict(extra="forbid")

    n: int = Field(4, ge=1, le=64, description="Samples the probe draws (reused afterwards).")
    estimator: str = Field("agreement", description="Registered difficulty estimator.")
    verifier: str | None = Field(None, description="Verifier whose scores the estimator reads.")

    @field_validator("estimator")
    @classmethod
    def _known_estimator(cls, name: str) -> str:
        if name not in ESTIMATORS:
            raise ValueError(f"unknown estimator {name!r}; known: {', '.join(sorted(ESTIMATORS))}")
        return name


class PolicyOption(BaseModel):
    """One way to answer a bin's questions, with what calibration measured for it."""

    model_config = ConfigDict(extra="forbid")

    tts: dict[str, Any] = Field(description="The strategy and its parameters, as in a request.")
    accuracy: float | None = Field(None, ge=0, le=1, description="Measured in calibration.")
    tokens: float | None = Field(
        None, ge=0, description="Mean generated tokens per question measured in calibration."
    )
    estimate: float | None = Field(
        None,
        ge=0,
        le=1,
        description="Accuracy expected at run time: the bin's measurement shrunk toward the "
        "option's accuracy over all bins (a small bin says little); chosen by when present.",
    )
    interval: tuple[float, float] | None = Field(
        None, description="95 % Wilson interval of the measured accuracy."
    )

    @property
    def strategy(self) -> str:
        return str(self.tts.get("strategy", "none"))

    @property
    def expected_accuracy(self) -> float:
        """What options are ranked by: the estimate, else the measurement, else 0."""
        if self.estimate is not None:
            return self.estimate
        return self.accuracy or 0.0


class PolicyBin(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9_]{1,32}$", description="Label in responses and metrics.")
    max_difficulty: float = Field(ge=0, le=1, description="Upper bound (inclusive) of the bin.")
    options: list[PolicyOption] = Field(min_length=1, max_length=16)
    problems: int | None = Field(None, ge=0, description="Calibration questions in this bin.")

    def choose(self, tokens_left: int | None) -> PolicyOption:
        """The most accurate option expected to fit `tokens_left` (the cheapest if none fits).

        Ties go to the cheaper option; options without measurements count as accuracy 0 and
        fitting any budget, so a hand-written single-option bin always applies.
        """
        fitting = [
            o
            for o in self.options
            if tokens_left is None or o.tokens is None or o.tokens <= tokens_left
        ]
        if not fitting:
            return min(self.options, key=lambda o: o.tokens or 0.0)
        return max(fitting, key=lambda o: (o.expected_accuracy, -(o.tokens or 0.0)))


class PolicyTable(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = Field(1, description="File format version.")
    name: str = Field("default", max_length=64)
    description: str = ""
    probe: ProbeSpec = Field(default_factory=ProbeSpec)
    budget: int | None = Field(
        None, ge=1, description="Token budget for choosing options when a request sets none."
    )
    bins: list[PolicyBin] = Field(min_length=1, max_length=MAX_BINS)
    calibration: dict[str, Any] = Field(
        default_factory=dict, description="Where the measurements came from (data set, model)."
    )

    @field_validator("bins")
    @classmethod
    def _ordered(cls, bins: list[PolicyBin]) -> list[PolicyBin]:
        bounds = [b.max_difficulty for b in bins]
        if bounds != sorted(set(bounds)):
            raise ValueError("bins must have strictly increasing max_difficulty")
        if bounds[-1] != 1.0:
            raise ValueError("the last bin must end at max_difficulty 1.0")
        if len({b.name for b in bins}) != len(bins):
            raise ValueError("bin names must be unique")
        return bins

    @model_validator(mode="after")
    def _options_valid(self) -> PolicyTable:
        for b in self.bins:
            for option in b.options:
                option_params(option.tts)
        return self

    def bin_for(self, difficulty: float) -> PolicyBin:
        for b in self.bins:
            if difficulty <= b.max_difficulty:
                return b
        return self.bins[-1]

    def bin_named(self, name: str) -> PolicyBin | None:
        return next((b for b in self.bins if b.name == name), None)

    def options(self) -> list[PolicyOption]:
        return [o for b in self.bins for o in b.options]

    def verifier_names(self) -> set[str]:
        names = {self.probe.verifier} if self.probe.verifier else set()
        for option in self.options():
            names.update(option_params(option.tts).verifier_names().values())
        return names


def option_params(tts: dict[str, Any], **request: Any) -> StrategyParams:
    """A table option's `tts` as validated parameters, with the request's common fields on top."""
    name = tts.get("strategy", "none")
    if name in _NOT_NESTABLE:
        raise PolicyError(f"a policy option cannot run {name!r}")
    if "budget" in tts:
        raise PolicyError("a policy option cannot set a budget; the request's budget applies")
    try:
        return strategy_class(name).Params.model_validate({**tts, **request})
    except StrategyInputError as exc:
        raise PolicyError(str(exc)) from None
    except ValidationError as exc:
        raise PolicyError(f"option {name!r}: {_first_error(exc)}") from None


def _first_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    return f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"


def load_policy(path: Path) -> PolicyTable:
    try:
        return parse_policy(path.read_text(encoding="utf-8"), str(path))
    except OSError as exc:
        raise PolicyError(f"cannot read the policy table {path}: {exc.strerror}") from None


def parse_policy(text: str, source: str = "policy table") -> PolicyTable:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PolicyError(f"{source} is not JSON: {exc}") from None
    try:
        return PolicyTable.model_validate(data)
    except ValidationError as exc:
        raise PolicyError(f"{source}: {_first_error(exc)}") from None


@cache
def default_policy() -> PolicyTable:
    """The table that ships with Ponder (calibrated on the embedded model)."""
    text = resources.files("ponder.strategies").joinpath("policies/default.json").read_text()
    return parse_policy(text, "the default policy table")
