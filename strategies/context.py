"""The run context: a request as a strategy sees it, and its only door to the engine and verifiers.

A strategy gets a `StrategyContext` and only talks to the engine and verifiers through it, so that
every generated token and verifier call is counted and checked against the budget in one place.
"""

from __future__ import annotations

import contextlib
import itertools
import time
import uuid
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from dataclasses import dataclass, field

from ponder.core.engine import (
    Engine,
    GeneratedSequence,
    Generation,
    SamplingOptions,
    StreamDelta,
    StreamEnd,
)
from ponder.core.errors import StrategyInputError
from ponder.core.prompting import Prompt, render_prompts
from ponder.core.reasoning import ReasoningFormat, ThinkingBudget, split_sequence
from ponder.verifiers.base import (
    DEFAULT_SCORING,
    Candidate,
    Question,
    ScoringOptions,
    StepScore,
    Verifier,
)

from .budget import Budget
from .budget_forcing import ForcingStats, force_thinking_budget
from .progress import AnswerObserver, EarlyAnswer, ProgressObserver, SearchProgress
from .usage import Usage
from .watched import WatchedSamples

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
    # Set by the server for a streamed request only: otherwise progress and early answers are
    # told to nobody, and strategies take their batched paths.
    on_progress: ProgressObserver | None = None
    on_answer: AnswerObserver | None = None
    # A reasoning model's format (--reasoning-parser): whole answers sampled here come back split,
    # `text` the answer and `reasoning` the thinking. Step searches continue partial texts, so
    # what they sample is left whole (their steps are the thinking) and split in the response.
    reasoning: ReasoningFormat | None = None
    # Per-candidate thinking cap and minimum (budget forcing), for whole answers of the prompt.
    thinking: ThinkingBudget | None = None
    forcing: ForcingStats = field(default_factory=ForcingStats)
    # Numbers the engine and verifier calls of this request, so their engine ids never collide.
    _call_numbers: itertools.count[int] = field(default_factory=itertools.count, repr=False)

    def call_id(self, kind: str) -> str:
        return f"{self.request_id}-{kind}{next(self._call_numbers)}"

    def options_for(self, verifier: Verifier) -> SamplingOptions:
        """The request's sampling options, asking for log-probs (and as many alternatives per
        token as it reads) when `verifier` reads them."""
        if not verifier.needs_logprobs:
            return self.options
        wanted = verifier.top_logprobs
        if self.options.logprobs is None:
            # The client asked for none, so only the verifier reads them, and for their values.
            return self.options.replace(logprobs=wanted, logprob_texts=False)
        if self.options.logprobs < wanted:
            return self.options.replace(logprobs=wanted)
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
        if prompts is None and n and self.thinking is not None and self.reasoning is not None:
            generations = await self._sample_thinking(n, options)
        else:
            whole = prompts is None
            prompts = [self.prompt_token_ids] if prompts is None else prompts
            generations = await self._generate(prompts, n, options) if n else []
            if whole:
                generations = self.split(generations)
        if not reused:
            return generations
        if not generations:
            return [Generation(tuple(reused), prompt_tokens=0)]
        fresh = generations[0]
        merged = Generation(
            (*reused, *fresh.sequences), fresh.prompt_tokens, fresh.cached_tokens, fresh.interrupted
        )
        return [merged]

    @property
    def streamed(self) -> bool:
        """Whether someone listens for early answers (the request is streamed)."""
        return self.on_answer is not None

    def report_progress(
        self,
        strategy: str,
        phase: str,
        step: int,
        max_steps: int | None,
        candidates_alive: int,
        best_score: float | None,
    ) -> None:
        """Tell a streamed request's client where the search stands; nothing when not streamed."""
        if self.on_progress is None:
            return
        self.on_progress(
            SearchProgress(
                strategy,
                phase,
                step,
                max_steps,
                candidates_alive,
                best_score,
                completion_tokens=self.usage.completion_tokens,
                token_budget=self.budget.max_tokens,
            )
        )

    def announce(self, choice: int, sequence: GeneratedSequence) -> None:
        """Say that response choice `choice` will be `sequence`, whatever the run still does."""
        if self.on_answer is not None:
            self.on_answer(EarlyAnswer(choice, sequence))

    async def sample_as_finished(
        self, n: int, options: SamplingOptions
    ) -> AsyncGenerator[tuple[int, GeneratedSequence], None]:
        """`n` samples of the request's prompt in one engine request, each (its index, itself)
        as soon as it finishes, for a strategy that can act before the last one is done.

        Counted as `sample` counts. The engine's streams take no deadline, so a request with one
        (or with reusable samples) must use `sample`; this refuses it.
        """
        assert self.budget.deadline is None and self.reusable is None, "use sample()"
        n, max_tokens = self.budget.fit_samples(1, n, options.max_tokens)
        if n == 0:
            return
        if max_tokens != options.max_tokens:
            options = options.replace(max_tokens=max_tokens)
        self.usage.engine_calls += 1
        parts: dict[int, list[StreamDelta]] = {}
        stream = self.engine.stream(
            self.prompt_token_ids, options, n=n, request_id=self.call_id("g")
        )
        # Closed however the caller leaves (a cancelled request): closing is the engine's abort.
        async with contextlib.aclosing(stream):
            async for item in stream:
                if isinstance(item, StreamEnd):
                    self.usage.prompt_tokens += item.prompt_tokens
                    self.usage.cached_tokens += item.cached_tokens
                    continue
                self.usage.completion_tokens += len(item.token_ids)
                self.budget.tokens_used += len(item.token_ids)
                parts.setdefault(item.index, []).append(item)
                if item.finish_reason is not None:
                    yield item.index, self.split_one(_joined(parts[item.index]))

    def watch_samples(self, n: int, options: SamplingOptions | None = None) -> WatchedSamples:
        """`n` samples of the request's prompt, started together and watched as they are
        generated, each stoppable (see `watched.py`); the budget may draw fewer or shorter ones.

        Samples reused from a difficulty probe are not served here: a watched sample is one the
        strategy can still stop, and those are already whole.
        """
        return WatchedSamples(
            self.engine,
            self.prompt_token_ids,
            n,
            options or self.options,
            budget=self.budget,
            usage=self.usage,
            request_id=self.call_id("w"),
        )

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
        return self.split(await self.sample(n, prompts=ids, options=options))

    def split_one(self, sequence: GeneratedSequence) -> GeneratedSequence:
        """A whole answer with its thinking split off (unchanged without a reasoning format)."""
        if self.reasoning is None:
            return sequence
        return split_sequence(sequence, self.reasoning, self.engine.decode)

    def split(self, generations: list[Generation]) -> list[Generation]:
        """Whole answers with their thinking split off (unchanged without a reasoning format)."""
        if self.reasoning is None:
            return generations
        return [
            Generation(
                tuple(self.split_one(s) for s in g.sequences),
                g.prompt_tokens,
                g.cached_tokens,
                g.interrupted,
            )
            for g in generations
        ]

    async def _sample_thinking(self, n: int, options: SamplingOptions) -> list[Generation]:
        """`n` whole answers of the request's prompt under the thinking budget, split."""
        assert self.reasoning is not None and self.thinking is not None
        calls = self.usage.engine_calls
        prompt_tokens, cached = self.usage.prompt_tokens, self.usage.cached_tokens
        sequences = await force_thinking_budget(
            self._generate,
            self.prompt_token_ids,
            n,
            options,
            self.reasoning,
            self.thinking,
            encode=self.engine.encode,
            decode=self.engine.decode,
            max_model_len=self.engine.max_model_len,
            stats=self.forcing,
        )
        if self.usage.engine_calls == calls:
            return []
        generation = Generation(
            tuple(sequences),
            self.usage.prompt_tokens - prompt_tokens,
            self.usage.cached_tokens - cached,
            self.budget.exhausted == "deadline",
        )
        return self.split([generation])

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


def _joined(deltas: Sequence[StreamDelta]) -> GeneratedSequence:
    """One finished sequence from its stream deltas."""
    logprobs = [lp for d in deltas for lp in d.logprobs or ()]
    with_logprobs = any(d.logprobs is not None for d in deltas)
    last = deltas[-1]
    return GeneratedSequence(
        text="".join(d.text for d in deltas),
        token_ids=tuple(t for d in deltas for t in d.token_ids),
        finish_reason=last.finish_reason or "abort",
        logprobs=tuple(logprobs) if with_logprobs else None,
        cumulative_logprob=sum(lp.logprob for lp in logprobs) if with_logprobs else None,
        stop_reason=last.stop_reason,
    )


@dataclass(frozen=True)
class Verdicts:
    """A verifier's verdicts on a batch: a score per candidate and, from PRMs, per step; None
    for the candidates the budget left unscored."""

    values: list[float | None]
    steps: list[tuple[StepScore, ...] | None]
