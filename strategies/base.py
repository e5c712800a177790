"""What every strategy shares: its parameters' common part, the budget, the run context, the result.

A strategy gets a `StrategyContext` and only talks to the engine and verifiers through it, so that
every generated token and verifier call is counted and checked against the budget in one place.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from ponder.core.engine import Engine, GeneratedSequence, Generation, SamplingOptions
from ponder.core.errors import StrategyInputError
from ponder.verifiers.base import (
    DEFAULT_SCORING,
    Aggregation,
    Candidate,
    Question,
    ScoringOptions,
    StepScore,
    Verifier,
)

__all__ = [
    "Budget",
    "BudgetParams",
    "BudgetReason",
    "RankedCandidate",
    "ReusableSamples",
    "Scored",
    "Strategy",
    "StrategyContext",
    "StrategyParams",
    "StrategyResult",
    "Usage",
]

BudgetReason = Literal["tokens", "verifier_calls", "deadline"]


class BudgetParams(BaseModel):
    """A request's compute budget; strategies stop and return the best so far when it runs out."""

    model_config = ConfigDict(extra="forbid")

    max_tokens: int | None = Field(
        None, ge=1, description="Most policy tokens the request may generate, all candidates."
    )
    max_verifier_calls: int | None = Field(
        None, ge=0, description="Most candidates (or steps) the verifiers may score."
    )
    deadline_s: float | None = Field(
        None, gt=0, description="Wall-clock seconds after which the best answer so far is returned."
    )


class StrategyParams(BaseModel):
    """Fields every strategy accepts in the request's `tts` object; strategies subclass this."""

    model_config = ConfigDict(extra="forbid")

    strategy: str = Field("none", description="Registered strategy name.")
    budget: BudgetParams = Field(default_factory=BudgetParams)
    return_trace: bool = Field(False, description="Return every candidate explored.")
    step_delimiter: str = Field(
        "\n\n", min_length=1, max_length=32, description="Text that ends a reasoning step."
    )
    aggregation: Aggregation | None = Field(
        None,
        description="How step scores become one (min, last, prod, mean); default: per verifier.",
    )
    reference: str | None = Field(
        None, max_length=1000, description="The known answer, for the reference verifier."
    )

    def scoring(self) -> ScoringOptions:
        return ScoringOptions(
            aggregation=self.aggregation,
            step_delimiter=self.step_delimiter,
            reference=self.reference,
        )

    def candidates(self) -> int:
        """Candidates this request explores at most (checked against the server's cap)."""
        return 1

    def verifier_names(self) -> dict[str, str]:
        """The verifiers this request will use, by the `tts` field that names them."""
        return {}


class Budget:
    """Counts what a request spent and says how much more it may spend."""

    def __init__(self, params: BudgetParams, *, started: float | None = None) -> None:
        self.max_tokens = params.max_tokens
        self.max_verifier_calls = params.max_verifier_calls
        start = time.monotonic() if started is None else started
        self.deadline = None if params.deadline_s is None else start + params.deadline_s
        self.tokens_used = 0
        self.verifier_calls = 0
        self.exhausted: BudgetReason | None = None

    def mark(self, reason: BudgetReason) -> None:
        self.exhausted = self.exhausted or reason

    def past_deadline(self) -> bool:
        if self.deadline is not None and time.monotonic() >= self.deadline:
            self.mark("deadline")
            return True
        return False

    def fit_samples(self, prompts: int, n: int, max_tokens: int) -> tuple[int, int]:
        """The (n, max_tokens) that cannot overrun the token budget, worst case; n may be 0."""
        if self.max_tokens is None:
            return n, max_tokens
        remaining = self.max_tokens - self.tokens_used
        if remaining <= 0:
            self.mark("tokens")
            return 0, 0
        fitting = remaining // (prompts * max_tokens)
        if fitting >= n:
            return n, max_tokens
        self.mark("tokens")
        if fitting >= 1:
            return fitting, max_tokens
        per_sequence = remaining // prompts
        return (1, per_sequence) if per_sequence >= 1 else (0, 0)

    def fit_verifier_calls(self, wanted: int) -> int:
        if self.max_verifier_calls is None:
            return wanted
        allowed = max(0, self.max_verifier_calls - self.verifier_calls)
        if allowed < wanted:
            self.mark("verifier_calls")
        return min(wanted, allowed)


@dataclass
class Usage:
    """Everything a request made the engine and verifiers do."""

    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    engine_calls: int = 0
    verifier_calls: int = 0
    verifier_tokens: int = 0
    verifier_cache_hits: int = 0

    @classmethod
    def total(cls, usages: Iterable[Usage]) -> Usage:
        """Field by field sum: one request's usage over its prompts."""
        summed = cls()
        for usage in usages:
            for f in dataclasses.fields(cls):
                setattr(summed, f.name, getattr(summed, f.name) + getattr(usage, f.name))
        return summed

    def add_generations(self, generations: Sequence[Generation]) -> None:
        self.engine_calls += 1
        for g in generations:
            self.prompt_tokens += g.prompt_tokens
            self.cached_tokens += g.cached_tokens
            self.completion_tokens += g.generated_tokens


# Drawing the rest of a partly reused batch shifts the seed, so it does not redraw the same samples.
_REUSE_SEED_STRIDE = 7_919


@dataclass
class ReusableSamples:
    """Full samples of the request already paid for (a difficulty probe), served before new ones.

    A strategy that then samples the request's prompt with the same options gets these first,
    so they are generated and counted once.
    """

    options: SamplingOptions
    sequences: list[GeneratedSequence]
    taken: int = 0

    def serves(self, options: SamplingOptions) -> bool:
        if self.taken >= len(self.sequences):
            return False
        wanted, have = options.logprobs, self.options.logprobs
        if wanted is not None and (have is None or have < wanted):
            return False
        return options.replace(logprobs=None) == self.options.replace(logprobs=None)

    def take(self, n: int) -> list[GeneratedSequence]:
        taken = self.sequences[self.taken : self.taken + n]
        self.taken += len(taken)
        return taken

    def unused(self) -> list[GeneratedSequence]:
        return self.sequences[self.taken :]


# (verifier name, candidates scored, tokens, seconds, step scores served from cache)
VerifierObserver = Callable[[str, int, int, float, int], None]


@dataclass
class StrategyContext:
    """The request as a strategy sees it, and the only door to the engine and verifiers."""

    engine: Engine
    verifiers: Mapping[str, Verifier]
    question: Question
    prompt_token_ids: list[int]
    options: SamplingOptions
    budget: Budget
    choices: int = 1
    request_id: str = field(default_factory=lambda: f"ponder-{uuid.uuid4().hex}")
    usage: Usage = field(default_factory=Usage)
    scoring: ScoringOptions = DEFAULT_SCORING
    on_verifier_call: VerifierObserver | None = None
    reusable: ReusableSamples | None = None
    # Numbers the engine and verifier calls of this request, so their engine ids never collide.
    _call_numbers: itertools.count[int] = field(default_factory=itertools.count, repr=False)

    def call_id(self, kind: str) -> str:
        return f"{self.request_id}-{kind}{next(self._call_numbers)}"

    def options_for(self, verifier: Verifier) -> SamplingOptions:
        """The request's sampling options, asking for log-probs when `verifier` reads them."""
        if verifier.needs_logprobs and self.options.logprobs is None:
            return self.options.replace(logprobs=0)
        return self.options

    def fit_context(
        self, prompts: Sequence[Sequence[int]], options: SamplingOptions
    ) -> SamplingOptions | None:
        """`options` with `max_tokens` shortened so that every prompt's continuation fits the
        model's context; None when one of the prompts leaves no room at all."""
        room = self.engine.max_model_len - max(len(p) for p in prompts)
        if room < 1:
            return None
        return options.replace(max_tokens=room) if room < options.max_tokens else options

    def verifier(self, name: str, param: str = "tts.verifier") -> Verifier:
        if name not in self.verifiers:
            known = ", ".join(sorted(self.verifiers)) or "none"
            raise StrategyInputError(
                f"verifier {name!r} is not loaded; loaded verifiers: {known}", param
            )
        return self.verifiers[name]

    async def sample(
        self,
        n: int,
        *,
        prompts: Sequence[Sequence[int]] | None = None,
        options: SamplingOptions | None = None,
    ) -> list[Generation]:
        """Sample `n` continuations of each prompt (default: the request's) in one engine call.

        Reusable samples of the request's prompt are served first, at no cost. The budget may
        shrink `n` or the length; an empty list means nothing more fits.
        """
        options = options or self.options
        reused: list[GeneratedSequence] = []
        if prompts is None and self.reusable is not None and self.reusable.serves(options):
            reused = self.reusable.take(n)
            n -= len(reused)
            if options.seed is not None:
                options = options.replace(seed=options.seed + _REUSE_SEED_STRIDE)
        prompts = [self.prompt_token_ids] if prompts is None else prompts
        generations = await self._generate(prompts, n, options) if n else []
        if not reused:
            return generations
        if not generations:
            return [Generation(tuple(reused), prompt_tokens=0)]
        fresh = generations[0]
        merged = Generation(
            (*reused, *fresh.sequences), fresh.prompt_tokens, fresh.cached_tokens, fresh.interrupted
        )
        return [merged]

    async def _generate(
        self, prompts: Sequence[Sequence[int]], n: int, options: SamplingOptions
    ) -> list[Generation]:
        if self.budget.past_deadline():
            return []
        n, max_tokens = self.budget.fit_samples(len(prompts), n, options.max_tokens)
        if n == 0:
            return []
        if max_tokens != options.max_tokens:
            options = options.replace(max_tokens=max_tokens)
        generations = await self.engine.generate(
            prompts, options, n=n, request_id=self.call_id("g"), deadline=self.budget.deadline
        )
        self.usage.add_generations(generations)
        self.budget.tokens_used += sum(g.generated_tokens for g in generations)
        if any(g.interrupted for g in generations):
            self.budget.mark("deadline")
        return generations

    async def score(self, verifier: Verifier, sequences: Sequence[GeneratedSequence]) -> Scored:
        """Score generated sequences in one verifier batch (see `score_candidates`)."""
        return await self.score_candidates(
            verifier,
            [Candidate(text=s.text, token_ids=s.token_ids, logprobs=s.logprobs) for s in sequences],
        )

    async def score_candidates(self, verifier: Verifier, candidates: Sequence[Candidate]) -> Scored:
        """Score candidates in one verifier batch; those the budget leaves unscored get None."""
        everything = list(candidates)
        unscored = Scored([None] * len(everything), [None] * len(everything))
        if self.budget.past_deadline():
            return unscored
        allowed = self.budget.fit_verifier_calls(len(everything))
        if allowed == 0:
            return unscored
        candidates = everything[:allowed]
        started = time.perf_counter()
        scores = await verifier.score(
            self.question, candidates, request_id=self.call_id("v"), options=self.scoring
        )
        elapsed = time.perf_counter() - started
        self.budget.verifier_calls += len(candidates)
        self.usage.verifier_calls += len(candidates)
        self.usage.verifier_tokens += scores.tokens
        self.usage.verifier_cache_hits += scores.cache_hits
        if self.on_verifier_call is not None:
            self.on_verifier_call(
                verifier.name, len(candidates), scores.tokens, elapsed, scores.cache_hits
            )
        rest = len(everything) - allowed
        steps = list(scores.steps) if scores.steps is not None else [None] * allowed
        return Scored([*scores.values, *[None] * rest], [*steps, *[None] * rest])


@dataclass(frozen=True)
class Scored:
    """A verifier's verdict on a batch: a score per candidate and, from PRMs, per step."""

    values: list[float | None]
    steps: list[tuple[StepScore, ...] | None]


@dataclass(frozen=True)
class RankedCandidate:
    """One explored candidate as the response and trace report it."""

    sequence: GeneratedSequence
    score: float | None = None
    answer: str | None = None
    step_scores: tuple[StepScore, ...] | None = None


@dataclass
class StrategyResult:
    candidates: list[RankedCandidate]
    # Indices into `candidates`, best first; the response returns the first `choices` of them.
    ranking: list[int]
    details: dict[str, Any] = field(default_factory=dict)


class Strategy(ABC):
    """Base of all strategies: a name, a description, a params model and `run`."""

    name: ClassVar[str]
    description: ClassVar[str]
    Params: ClassVar[type[StrategyParams]] = StrategyParams
    # Whether `stream` yields tokens as they are generated (else the chosen answer is streamed).
    streams_tokens: ClassVar[bool] = False

    def __init__(self, params: StrategyParams) -> None:
        self.params = params

    def candidates(self) -> int:
        """Candidates this request explores at most (checked against the server's cap)."""
        return self.params.candidates()

    def planned_tokens(self, max_tokens: int, choices: int) -> int:
        """Worst-case policy tokens for the server's cap; strategies with more work override."""
        return max(self.candidates(), choices) * max_tokens

    # Plain decoding: the request's `n` choices are the samples themselves (no search).
    choices_are_samples: ClassVar[bool] = False

    def needs_diverse_samples(self) -> bool:
        """Whether this request draws several samples of one prompt that must differ, so that a
        temperature of 0 cannot serve it; strategies that sample one at a time override."""
        return self.candidates() > 1

    @abstractmethod
    async def run(self, ctx: StrategyContext) -> StrategyResult:
        """Explore candidates through `ctx` and rank them."""
