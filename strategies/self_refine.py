"""`self_refine`: answer, critique, rewrite until a verifier is satisfied (Madaan et al. 2023).

Sampling more answers (best-of-N, voting) cannot fix a mistake every sample shares; asking the
model to find its own mistakes and rewrite the answer can. Each of `n` chains starts from its own
answer; per round every unfinished chain is critiqued (by the policy, or from the verifier's
verdict at no engine cost) and rewritten, and each phase is one batched engine call for all chains
so vLLM runs them together. Every answer ever written is a candidate, ranked by the verifier.

A chain stops when its answer scores at least `threshold`, when a rewrite is unchanged (the same
text once whitespace is collapsed: the model has nothing left to fix, and another round would
mostly repeat it; a rewrite that keeps the final answer but mends the reasoning is a change, since
process verifiers score the reasoning), after `max_rounds`, when the budget ends the run, or
(reason "context") when the question leaves the context no room for a critique or a rewrite.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from pydantic import Field

from ponder.core.answers import extract_answer
from ponder.core.engine import GeneratedSequence, SamplingOptions
from ponder.core.prompting import Prompt
from ponder.verifiers.base import StepScore, Verifier
from ponder.verifiers.steps import split_steps

from .base import RankedCandidate, Strategy, StrategyParams, StrategyResult
from .context import StrategyContext
from .progress import best_score

__all__ = ["CRITIQUE_PROMPT", "REFINE_PROMPT", "SelfRefine", "SelfRefineParams", "verdict_critique"]

CRITIQUE_PROMPT = (
    "Question:\n{question}\n\nAnswer:\n{answer}\n\n"
    "Review this answer step by step and point out any mistakes in its reasoning, calculations "
    "or final answer. Be specific and brief, and do not write a corrected solution."
)
REFINE_PROMPT = (
    "Question:\n{question}\n\nPrevious answer:\n{answer}\n\n"
    "Feedback on the previous answer:\n{critique}\n\n"
    "Write an improved answer to the question that fixes the mistakes the feedback points out. "
    "Give the complete solution, not only the changes, and end with the final answer."
)
# critic="verifier": the verdict in words, so the same refine prompt serves both critics.
VERDICT = "An automatic checker rated this answer {score:.2f}, from 0 (wrong) to 1 (right)."
DOUBTED_STEPS = "The steps it doubts most:"
NO_DOUBTED_STEP = "It found no single step clearly wrong; check the reasoning and the final answer."
# Doubted steps quoted in a verifier critique, and the characters quoted of each.
_DOUBTED = 3
_QUOTE_CHARS = 200

Critic = Literal["model", "verifier"]
# "context": the question alone leaves no room to generate a critique or a rewrite.
StopReason = Literal["threshold", "unchanged", "max_rounds", "budget", "context"]


class SelfRefineParams(StrategyParams):
    verifier: str = Field("self_judge", description="Verifier that scores every answer.")
    critic: Critic = Field(
        "model", description="Who critiques: the policy model, or the verifier's verdict."
    )
    max_rounds: int = Field(3, ge=1, le=16, description="Most critique-and-rewrite rounds.")
    threshold: float = Field(
        0.9, ge=0.0, le=1.0, description="A chain stops once its answer scores at least this."
    )
    n: int = Field(1, ge=1, le=16, description="Refinement chains, advanced together in batches.")

    def candidates(self) -> int:
        return self.n * (self.max_rounds + 1)

    def verifier_names(self) -> dict[str, str]:
        return {"tts.verifier": self.verifier}


def _normalized(text: str) -> str:
    """The text with whitespace collapsed: rewrites equal under it are "unchanged"."""
    return " ".join(text.split())


def _produced(sequence: GeneratedSequence) -> bool:
    # A deadline abort before the first token leaves nothing to score, critique or return.
    return sequence.num_tokens > 0 or sequence.finish_reason != "abort"


def verdict_critique(
    score: float, steps: Sequence[StepScore] | None, text: str, delimiter: str, threshold: float
) -> str:
    """A critique from a verifier's verdict: its score and, from a process verifier, the lowest
    scored steps below the threshold, quoted (a unit past the last step is the final answer)."""
    lines = [VERDICT.format(score=score)]
    if steps:
        written = split_steps(text, delimiter)
        judged = [(s, k) for k, s in enumerate(steps) if s is not None and s < threshold]
        doubted = sorted(sorted(judged)[:_DOUBTED], key=lambda pair: pair[1])
        if not doubted:
            lines.append(NO_DOUBTED_STEP)
        else:
            lines.append(DOUBTED_STEPS)
            for s, k in doubted:
                what = f'step {k + 1}: "{written[k][:_QUOTE_CHARS]}"' if k < len(written) else ""
                lines.append(f"- {what or 'the final answer'} ({s:.2f})")
    return "\n".join(lines)


@dataclass
class _Answer:
    sequence: GeneratedSequence
    round: int
    score: float | None = None
    steps: tuple[StepScore, ...] | None = None

    @property
    def text(self) -> str:
        return self.sequence.text

    def rank(self) -> tuple[bool, float, int]:
        return (self.score is None, -(self.score or 0.0), -self.round)


@dataclass
class _Chain:
    answers: list[int]  # indices into the run's answers, oldest first
    critiques: list[str] = field(default_factory=list)
    # Tokens each critique cost (0 for a verifier's verdict), so the trace accounts for them.
    critique_tokens: list[int] = field(default_factory=list)
    stopped: StopReason | None = None


class SelfRefine(Strategy):
    name: ClassVar[str] = "self_refine"
    description: ClassVar[str] = "Critique and rewrite answers until a verifier is satisfied."
    Params: ClassVar[type[StrategyParams]] = SelfRefineParams
    params: SelfRefineParams

    def planned_tokens(self, max_tokens: int, choices: int) -> int:
        """Worst case: every chain writes its answer, then per round a critique (critic="model"
        only) and a rewrite, each at most `max_tokens` (phases never raise the request's limit)."""
        p = self.params
        per_round = 2 if p.critic == "model" else 1
        return max(p.n * (1 + p.max_rounds * per_round), choices) * max_tokens

    def needs_diverse_samples(self) -> bool:
        # One chain writes, critiques and rewrites one sample at a time; several chains start
        # from answers sampled together, which must differ.
        return self.params.n > 1

    async def run(self, ctx: StrategyContext) -> StrategyResult:
        return await _Refinement(ctx, self.params, ctx.verifier(self.params.verifier)).run()


class _Refinement:
    """One request's chains and every answer they wrote."""

    def __init__(self, ctx: StrategyContext, params: SelfRefineParams, verifier: Verifier) -> None:
        self.ctx, self.p, self.verifier = ctx, params, verifier
        self.answer_options = ctx.options_for(verifier)
        # The request's stop strings delimit its answers, not our critiques; nobody reads a
        # critique's log-probs.
        self.critique_options = ctx.options.replace(logprobs=None, stop=())
        self.answers: list[_Answer] = []
        self.chains: list[_Chain] = []

    async def run(self) -> StrategyResult:
        generations = await self.ctx.sample(self.p.n, options=self.answer_options)
        if generations:
            for sequence in generations[0].sequences:
                if _produced(sequence):
                    self.chains.append(_Chain([self._add(sequence, 0)]))
            await self._judge(self.chains, 0, interrupted=generations[0].interrupted)
        for round_ in range(1, self.p.max_rounds + 1):
            active = [c for c in self.chains if c.stopped is None]
            if not active:
                break
            critiques = await self._critique(active)
            if critiques is None:
                break
            await self._refine(active, critiques, round_)
        return self._result()

    def _add(self, sequence: GeneratedSequence, round_: int) -> int:
        self.answers.append(_Answer(sequence, round_))
        return len(self.answers) - 1

    def _latest(self, chain: _Chain) -> _Answer:
        return self.answers[chain.answers[-1]]

    def _stop(self, chains: Sequence[_Chain], reason: StopReason) -> None:
        for chain in chains:
            chain.stopped = chain.stopped or reason

    async def _judge(self, chains: Sequence[_Chain], round_: int, *, interrupted: bool) -> None:
        """Score the newest answer of each chain (one verifier call) and stop the settled ones."""
        latest = [self._latest(c) for c in chains]
        scored = await self.ctx.score(self.verifier, [a.sequence for a in latest])
        for answer, value, steps in zip(latest, scored.values, scored.steps, strict=True):
            answer.score, answer.steps = value, steps
        for chain, answer in zip(chains, latest, strict=True):
            previous = self.answers[chain.answers[-2]] if len(chain.answers) > 1 else None
            if answer.score is None:
                # The verifier budget or the deadline ran out: nothing more can be ranked.
                interrupted = True
            elif answer.score >= self.p.threshold:
                chain.stopped = "threshold"
            elif previous is not None and _normalized(previous.text) == _normalized(answer.text):
                chain.stopped = "unchanged"
            elif round_ >= self.p.max_rounds:
                chain.stopped = "max_rounds"
        if interrupted:
            self._stop(self.chains, "budget")
        alive = sum(1 for c in self.chains if c.stopped is None)
        best = best_score(a.score for a in self.answers)
        phase = "answer" if round_ == 0 else "round"
        self.ctx.report_progress(
            SelfRefine.name, phase, round_ + 1, self.p.max_rounds + 1, alive, best
        )

    def _prompt(self, template: str, quotes: Mapping[str, str]) -> Prompt:
        """A prompt about the question that quotes `quotes` (cut from their start to fit)."""
        return Prompt(template, {"question": self.ctx.question.text}, quotes)

    async def _generate(
        self, chains: Sequence[_Chain], prompts: list[Prompt], options: SamplingOptions
    ) -> tuple[list[GeneratedSequence], bool] | None:
        """One reply per prompt in one engine call, and whether the deadline cut it short;
        None (the chains stopped) when nothing fits in the context or the budget."""
        generations = await self.ctx.sample_replies(prompts, 1, options)
        if generations is None:
            self._stop(chains, "context")
            return None
        if not generations:
            self._stop(self.chains, "budget")
            return None
        return [g.sequences[0] for g in generations], any(g.interrupted for g in generations)

    async def _critique(self, chains: Sequence[_Chain]) -> list[str] | None:
        if self.p.critic == "verifier":
            critiques = [self._verdict(self._latest(c)) for c in chains]
            costs = [0] * len(chains)
        else:
            prompts = [
                self._prompt(CRITIQUE_PROMPT, {"answer": self._latest(c).text}) for c in chains
            ]
            generated = await self._generate(chains, prompts, self.critique_options)
            if generated is None:
                return None
            critiques = [s.text for s in generated[0]]
            costs = [s.num_tokens for s in generated[0]]
            if generated[1]:
                # The deadline cut the critiques short: no time is left to rewrite.
                self._stop(self.chains, "budget")
        for chain, critique, cost in zip(chains, critiques, costs, strict=True):
            chain.critiques.append(critique)
            chain.critique_tokens.append(cost)
        return None if any(c.stopped for c in chains) else critiques

    def _verdict(self, answer: _Answer) -> str:
        assert answer.score is not None, "chains stop when an answer goes unscored"
        steps, delimiter = answer.steps, self.ctx.scoring.step_delimiter
        return verdict_critique(answer.score, steps, answer.text, delimiter, self.p.threshold)

    async def _refine(
        self, chains: Sequence[_Chain], critiques: Sequence[str], round_: int
    ) -> None:
        prompts = [
            self._prompt(REFINE_PROMPT, {"answer": self._latest(c).text, "critique": critique})
            for c, critique in zip(chains, critiques, strict=True)
        ]
        generated = await self._generate(chains, prompts, self.answer_options)
        if generated is None:
            return
        rewritten = []
        for chain, sequence in zip(chains, generated[0], strict=True):
            if _produced(sequence):
                chain.answers.append(self._add(sequence, round_))
                rewritten.append(chain)
        await self._judge(rewritten, round_, interrupted=generated[1])

    def _result(self) -> StrategyResult:
        answers = self.answers
        # Unscored answers last; equal scores: the later round first (a rewrite that scores the
        # same is at least as good), then chain order (the sort is stable).
        ranking = sorted(range(len(answers)), key=lambda i: answers[i].rank())
        candidates = [
            RankedCandidate(a.sequence, a.score, extract_answer(a.text), a.steps) for a in answers
        ]
        details: dict[str, Any] = {
            "verifier": self.verifier.name,
            "critic": self.p.critic,
            "rounds": [len(c.answers) - 1 for c in self.chains],
            "stopped": [c.stopped for c in self.chains],
        }
        if self.p.return_trace:
            details["history"] = [
                {
                    "candidates": c.answers,
                    "answers": [answers[i].text for i in c.answers],
                    "critiques": c.critiques,
                    "critique_tokens": c.critique_tokens,
                    "scores": [answers[i].score for i in c.answers],
                }
                for c in self.chains
            ]
        return StrategyResult(candidates=candidates, ranking=ranking, details=details)
