"""A generation assembled from streamed deltas, so that what was made so far can be read.

The in-process engine returns, at a deadline, each sequence as far as it got (whole ones stay
whole); a remote request streams when it has a deadline and this gathers its chunks to the same
effect. Strategies that watch candidates as they are generated (`candidates.py`) read each
candidate's tokens so far from it, and its result once they end.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from .engine import (
    FinishReason,
    GeneratedSequence,
    Generation,
    StreamDelta,
    StreamEnd,
    TokenLogprob,
)

__all__ = ["PartialGeneration"]


@dataclass
class _Sequence:
    text: list[str] = field(default_factory=list)
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[TokenLogprob] | None = None
    finish_reason: FinishReason | None = None
    stop_reason: str | None = None


class PartialGeneration:
    def __init__(self, n: int, prompt_len: int) -> None:
        self._sequences = [_Sequence() for _ in range(n)]
        self._prompt_tokens = prompt_len
        self._cached_tokens = 0

    def add(self, delta: StreamDelta | StreamEnd) -> None:
        if isinstance(delta, StreamEnd):
            self._prompt_tokens = delta.prompt_tokens or self._prompt_tokens
            self._cached_tokens = delta.cached_tokens
            return
        seq = self._sequences[delta.index]
        seq.text.append(delta.text)
        seq.token_ids.extend(delta.token_ids)
        if delta.logprobs is not None:
            # Extended in place: a long candidate read token by token must not copy its past.
            if seq.logprobs is None:
                seq.logprobs = []
            seq.logprobs.extend(delta.logprobs)
        if delta.finish_reason is not None:
            seq.finish_reason = delta.finish_reason
            seq.stop_reason = delta.stop_reason

    def tokens(self, index: int) -> int:
        """Tokens of sequence `index` so far."""
        return len(self._sequences[index].token_ids)

    def text(self, index: int) -> str:
        """Sequence `index`'s text so far."""
        return "".join(self._sequences[index].text)

    def logprobs(self, index: int) -> Sequence[TokenLogprob]:
        """The log-probs of sequence `index` so far (a view: do not change it)."""
        return self._sequences[index].logprobs or ()

    def finished(self, index: int) -> bool:
        return self._sequences[index].finish_reason is not None

    def result(self, *, interrupted: bool) -> Generation:
        sequences = tuple(
            GeneratedSequence(
                text="".join(s.text),
                token_ids=tuple(s.token_ids),
                # A sequence that finished before the deadline is whole.
                finish_reason=s.finish_reason or "abort",
                logprobs=tuple(s.logprobs) if s.logprobs is not None else None,
                cumulative_logprob=(
                    sum(t.logprob for t in s.logprobs) if s.logprobs is not None else None
                ),
                stop_reason=s.stop_reason,
            )
            for s in self._sequences
        )
        unfinished = any(s.finish_reason is None for s in self._sequences)
        return Generation(
            sequences,
            prompt_tokens=self._prompt_tokens,
            cached_tokens=self._cached_tokens,
            interrupted=interrupted and unfinished,
        )
