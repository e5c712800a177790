"""The run context: a request as a strategy sees it, and its only door to the engine and verifiers.

A strategy gets a `StrategyContext` and only talks to the engine and verifiers through it, so that
every generated token and verifier call is counted and checked against the budget in one place.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from ponder.core.engine import Engine, GeneratedSequence, Generation, SamplingOptions
from ponder.core.errors import StrategyInputError
from ponder.core.prompting import Prompt, render_prompts
from ponder.verifiers.base import (
    DEFAULT_SCORING,
    Candidate,
    Question,
    ScoringOptions,
    StepScore,
    Verifier,
)

from .budget import Budget
from .usage import Usage

__all__ = ["ReusableSamples", "StrategyContext", "Verdicts", "VerifierObserver"]

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
        if wanted is not None and options.logprob_texts and not self.options.logprob_texts:
            return False
        ignored = {"logprobs": None, "logprob_texts": True}
        return options.replace(**ignored) == self.options.replace(**ignored)

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
            # The client asked for none, so only the verifier reads them, and for their values.
            return self.options.replace(logprobs=0, logprob_texts=False)
        return self.options

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

    async def sample_replies(
        self, prompts: Sequence[Prompt], n: int, options: SamplingOptions
    ) -> list[Generation] | None:
        """Sample `n` replies to each prompt (a vote, a merge, a critique, a rewrite) in one call.

        A prompt restates the question, so it follows the request's conversation (a system prompt,
        an answer format, earlier turns still apply) and is fitted to leave room for
        `options.max_tokens`: the texts it quotes are cut first; where that cannot make room, the
        replies are shortened to what the context holds. None when a prompt leaves no room at
        all; an empty list when the budget allows nothing.
        """
        ids = await render_prompts(
            self.engine, prompts, options.max_tokens, head=self.question.context()
        )
        room = self.engine.max_model_len - max(len(p) for p in ids)
        if room < 1:
            return None
        if room < options.max_tokens:
            options = options.replace(max_tokens=room)
        return await self.sample(n, prompts=ids, options=options)

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

    async def score(self, verifier: Verifier, sequences: Sequence[GeneratedSequence]) -> Verdicts:
        """Score generated sequences in one verifier batch (see `score_candidates`)."""
        return await self.score_candidates(
            verifier,
            [Candidate(text=s.text, token_ids=s.token_ids, logprobs=s.logprobs) for s in sequences],
        )

    async def score_candidates(
        self, verifier: Verifier, candidates: Sequence[Candidate]
    ) -> Verdicts:
        """Score candidates in one verifier batch; those the budget leaves unscored get None."""
        everything = list(candidates)
        unscored = Verdicts([None] * len(everything), [None] * len(everything))
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
        return Verdicts([*scores.values, *[None] * rest], [*steps, *[None] * rest])


@dataclass(frozen=True)
class Verdicts:
    """A verifier's verdicts on a batch: a score per candidate and, from PRMs, per step; None
    for the candidates the budget left unscored."""

    values: list[float | None]
    steps: list[tuple[StepScore, ...] | None]
