"""The verifier protocol: score candidate answers to one question, all in one batch.

Scores are in [0, 1] (higher is better) so that strategies can compare, threshold and sum them
without knowing which verifier produced them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Protocol

from ponder.core.engine import TokenLogprob

__all__ = [
    "DEFAULT_SCORING",
    "Aggregation",
    "Candidate",
    "Question",
    "Scores",
    "ScoringOptions",
    "StepScore",
    "Verifier",
    "VerifierError",
    "VerifierKind",
    "logprob_scores",
]

VerifierKind = Literal["outcome", "process", "generative", "programmatic"]
Aggregation = Literal["min", "last", "prod", "mean"]
# A step's score; None when the step says nothing the verifier can judge (it is left out of
# aggregation).
StepScore = float | None


class VerifierError(ValueError):
    """A verifier cannot score these candidates (for example, it needs log-probs they lack)."""


@dataclass(frozen=True)
class Question:
    """What the candidates answer: the conversation, its last user turn as plain text."""

    messages: tuple[dict[str, Any], ...]

    def _last_user(self) -> int:
        """Index of the last user turn; the last message when there is none."""
        users = [i for i, m in enumerate(self.messages) if m.get("role") == "user"]
        return users[-1] if users else len(self.messages) - 1

    @property
    def text(self) -> str:
        return str(self.messages[self._last_user()].get("content") or "") if self.messages else ""

    def context(self) -> list[dict[str, Any]]:
        """The messages before the turn `text` comes from: a system prompt and earlier turns,
        which a prompt that restates the question must keep (the question may lean on them)."""
        return list(self.messages[: max(0, self._last_user())])


@dataclass(frozen=True)
class Candidate:
    text: str
    token_ids: tuple[int, ...] = ()
    logprobs: tuple[TokenLogprob, ...] | None = None


@dataclass(frozen=True)
class ScoringOptions:
    """What a request may choose about scoring."""

    # How step scores become one score; None means the verifier's own default.
    aggregation: Aggregation | None = None
    step_delimiter: str = "\n\n"
    # The known final answer, for the `reference` verifier (used by evaluations).
    reference: str | None = None


DEFAULT_SCORING = ScoringOptions()


@dataclass(frozen=True)
class Scores:
    """One score per candidate, and the compute it took (for usage and metrics)."""

    values: tuple[float, ...]
    # Tokens the verifier processed: prompt tokens it read plus tokens it generated.
    tokens: int = 0
    # Process verifiers: each candidate's step scores, in step order.
    steps: tuple[tuple[StepScore, ...], ...] | None = None
    # Step scores served from the verifier's cache instead of being computed again.
    cache_hits: int = 0


class Verifier(Protocol):
    name: str
    kind: ClassVar[VerifierKind]
    family: ClassVar[str]
    description: ClassVar[str]
    # Whether candidates must carry per-token log-probs (the strategy then asks the engine).
    needs_logprobs: ClassVar[bool]
    # Alternatives per token the verifier asks the engine for when it scores (0: none); planning
    # checks it against the log-probs the server serves, before a request runs.
    top_logprobs: ClassVar[int]

    @property
    def model(self) -> str | None:
        """The model that scores, if any (listed by /v1/strategies)."""
        ...

    async def score(
        self,
        question: Question,
        candidates: Sequence[Candidate],
        *,
        request_id: str,
        options: ScoringOptions = DEFAULT_SCORING,
    ) -> Scores: ...


def logprob_scores(
    family: str, candidates: Sequence[Candidate], measure: Callable[[Any], float | None]
) -> Scores:
    """Scores read off each candidate's own log-probs, with no engine call; an empty answer
    (no value) scores 0."""
    values = []
    for candidate in candidates:
        if candidate.logprobs is None:
            raise VerifierError(f"the {family} verifier needs per-token log-probs")
        value = measure(candidate.logprobs)
        values.append(0.0 if value is None else value)
    return Scores(tuple(values), tokens=0)
