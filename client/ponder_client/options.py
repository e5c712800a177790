"""Typed `tts` options for every strategy the server offers, as its `/v1/strategies` lists them.

One model per strategy, with the server's defaults and bounds, so a wrong value fails here before
a request is sent. `tests/client/test_schemas.py` compares each model's JSON schema with the
schema the server publishes, so the two cannot drift apart. Only the fields a caller set are sent
(`to_tts`); the server applies its own defaults to the rest. A strategy this client does not know
yet goes through `CustomStrategy`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "MCTS",
    "STRATEGY_OPTIONS",
    "BeamSearch",
    "BestOfN",
    "Budget",
    "ComputeOptimal",
    "CustomStrategy",
    "DeepConf",
    "GraphOfThoughts",
    "NoStrategy",
    "PrmBeamSearch",
    "RecursiveSelfAggregation",
    "SelfConsistency",
    "SelfRefine",
    "StrategyOptions",
    "TreeOfThoughts",
]


class Budget(BaseModel):
    """A request's compute budget: the search stops and answers with its best when one runs out."""

    model_config = ConfigDict(extra="forbid")

    max_tokens: int | None = Field(None, ge=1)
    max_verifier_calls: int | None = Field(None, ge=0)
    deadline_s: float | None = Field(None, gt=0)


class StrategyOptions(BaseModel):
    """What every strategy accepts; each subclass fixes `strategy` to its name."""

    model_config = ConfigDict(extra="forbid")

    strategy: str = "none"
    budget: Budget = Field(default_factory=Budget)
    return_trace: bool = False
    step_delimiter: str = Field("\n\n", min_length=1, max_length=32)
    aggregation: Literal["min", "last", "prod", "mean"] | None = None
    reference: str | None = Field(None, max_length=1000)
    thinking_budget: int | None = Field(None, ge=0)
    min_thinking_tokens: int = Field(0, ge=0)

    def to_tts(self) -> dict[str, Any]:
        """The request's `tts` object: the strategy and the fields the caller set."""
        return {"strategy": self.strategy, **self.model_dump(mode="json", exclude_unset=True)}


class NoStrategy(StrategyOptions):
    """`none`: plain decoding, streamed token by token."""

    strategy: Literal["none"] = "none"


class BestOfN(StrategyOptions):
    strategy: Literal["best_of_n"] = "best_of_n"
    n: int = Field(4, ge=1)
    verifier: str = "self_judge"
    weighted: bool = False


class SelfConsistency(StrategyOptions):
    strategy: Literal["self_consistency"] = "self_consistency"
    n: int = Field(8, ge=1)
    adaptive: bool = False
    min_samples: int = Field(4, ge=1)
    threshold: float = Field(0.95, gt=0.5, le=1.0)


class BeamSearch(StrategyOptions):
    strategy: Literal["beam_search"] = "beam_search"
    beam_width: int = Field(4, ge=1, le=64)
    length_penalty: float = Field(1.0, ge=-10.0, le=10.0)


class _StepSearch(StrategyOptions):
    """What the step-level searches share."""

    verifier: str = "step_judge"
    max_steps: int = Field(8, ge=1, le=64)
    step_tokens: int = Field(128, ge=1, le=4096)
    confidence: Literal["step_mean", "step_lowest_group", "path_mean"] = "step_mean"
    confidence_window: int = Field(16, ge=1, le=4096)
    confidence_top_logprobs: int | None = Field(None, ge=0, le=20)
    confidence_weight: float = Field(0.0, ge=0.0, le=1.0)


class PrmBeamSearch(_StepSearch):
    strategy: Literal["prm_beam_search"] = "prm_beam_search"
    n: int = Field(8, ge=1, le=256)
    beam_width: int = Field(4, ge=1, le=256)
    lookahead: int = Field(0, ge=0, le=8)
    final: Literal["score", "weighted_vote"] = "score"
    dvts: bool = False


class MCTS(_StepSearch):
    strategy: Literal["mcts"] = "mcts"
    simulations: int = Field(8, ge=1, le=128)
    expansions: int = Field(3, ge=1, le=16)
    c_puct: float = Field(1.0, gt=0, le=100)
    value: Literal["prm", "rollout"] = "prm"
    final: Literal["visits", "value"] = "visits"


class TreeOfThoughts(_StepSearch):
    strategy: Literal["tree_of_thoughts"] = "tree_of_thoughts"
    method: Literal["bfs", "dfs"] = "bfs"
    breadth: int = Field(3, ge=1, le=32)
    proposals: int = Field(3, ge=1, le=16)
    value: Literal["verifier", "vote"] = "verifier"
    votes: int = Field(5, ge=1, le=32)
    threshold: float = Field(0.5, ge=0.0, le=1.0)
    max_expansions: int = Field(32, ge=1, le=256)


class GraphOfThoughts(StrategyOptions):
    strategy: Literal["graph_of_thoughts"] = "graph_of_thoughts"
    verifier: str = "self_judge"
    n: int = Field(4, ge=1)
    rounds: int = Field(2, ge=1, le=8)
    merge: int = Field(2, ge=2, le=16)
    aggregations: int = Field(2, ge=1, le=16)


class SelfRefine(StrategyOptions):
    strategy: Literal["self_refine"] = "self_refine"
    verifier: str = "self_judge"
    critic: Literal["model", "verifier"] = "model"
    max_rounds: int = Field(3, ge=1, le=16)
    threshold: float = Field(0.9, ge=0.0, le=1.0)
    n: int = Field(1, ge=1, le=16)


class RecursiveSelfAggregation(StrategyOptions):
    strategy: Literal["rsa"] = "rsa"
    population: int = Field(4, ge=1, le=16)
    subset: int = Field(2, ge=1, le=8)
    rounds: int = Field(2, ge=1, le=8)
    verifier: str | None = None


class DeepConf(StrategyOptions):
    strategy: Literal["deepconf"] = "deepconf"
    n: int = Field(16, ge=1)
    mode: Literal["online", "offline"] = "online"
    keep: float = Field(0.5, gt=0.0, le=1.0)
    confidence: Literal["lowest_group", "bottom_group", "tail"] = "lowest_group"
    window: int = Field(32, ge=1, le=4096)
    tail: int = Field(32, ge=1, le=4096)
    top_logprobs: int = Field(5, ge=1, le=20)
    warmup: int = Field(3, ge=1)
    consensus: float = Field(0.6, gt=0.5, le=1.0)


class ComputeOptimal(StrategyOptions):
    strategy: Literal["compute_optimal"] = "compute_optimal"
    difficulty: float | str | None = None
    probe_only: bool = False


class CustomStrategy(StrategyOptions):
    """A strategy this client has no model for: any name, any fields (the server checks them)."""

    model_config = ConfigDict(extra="allow")


STRATEGY_OPTIONS: dict[str, type[StrategyOptions]] = {
    cls.model_fields["strategy"].default: cls
    for cls in (
        NoStrategy,
        BestOfN,
        SelfConsistency,
        BeamSearch,
        PrmBeamSearch,
        MCTS,
        TreeOfThoughts,
        GraphOfThoughts,
        RecursiveSelfAggregation,
        SelfRefine,
        ComputeOptimal,
        DeepConf,
    )
}
