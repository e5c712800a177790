"""Budget forcing (Muennighoff et al. 2025, "s1"): a thinking cap and minimum for every candidate.

Candidates first think, stopping at the model's end-of-thinking delimiter. One that reaches its
cap still thinking gets the delimiter appended and goes on to answer; one that ends its thinking
before the minimum has the delimiter replaced by "Wait" and thinks on. Every continuation is a
prompt of token ids (the request's prompt, then what the candidate has so far), and each round
sends all its candidates in one engine call, so they share the prefix cache.

A round's candidates may have different room left (their thinking lengths differ); the call asks
for the most any of them may take, and a candidate that went past its own limit is cut back to
it. Those tokens were generated and are counted (they are reasoning tokens: never returned).
Only the engine generates counted tokens: the delimiters and "Wait" appended here are prompt
tokens of the next round.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from ponder.core.engine import FinishReason, GeneratedSequence, Generation, SamplingOptions
from ponder.core.reasoning import ReasoningFormat, ThinkingBudget, thinking_length

__all__ = ["ForcingStats", "force_thinking_budget"]

Generate = Callable[[Sequence[Sequence[int]], int, SamplingOptions], Awaitable[list[Generation]]]


@dataclass
class ForcingStats:
    """What budget forcing did for a request, as the `tts` block reports it."""

    rounds: int = 0
    forced_ends: int = 0
    waits: int = 0
    appended_tokens: int = 0

    def report(self) -> dict[str, int]:
        return {
            "rounds": self.rounds,
            "forced_ends": self.forced_ends,
            "waits": self.waits,
            "appended_tokens": self.appended_tokens,
        }


@dataclass
class _Candidate:
    ids: list[int] = field(default_factory=list)  # after the prompt: generated and appended
    texts: list[str] = field(default_factory=list)
    generated: int = 0
    thought: int = 0
    waits: int = 0
    pieces: list[GeneratedSequence] = field(default_factory=list)
    finish: FinishReason | None = None
    stop_reason: str | None = None

    def sequence(self) -> GeneratedSequence:
        only = self.pieces[0] if len(self.pieces) == 1 and not self.texts[1:] else None
        return GeneratedSequence(
            text="".join(self.texts),
            token_ids=tuple(self.ids),
            finish_reason=self.finish or "length",
            # Log-probs only where the engine made every token (no appended ones in between).
            logprobs=only.logprobs if only else None,
            cumulative_logprob=only.cumulative_logprob if only else None,
            stop_reason=self.stop_reason,
        )


class _Forcing:
    def __init__(
        self,
        generate: Generate,
        prompt: Sequence[int],
        options: SamplingOptions,
        fmt: ReasoningFormat,
        budget: ThinkingBudget,
        tokenizer: tuple[Callable[[str], list[int]], Callable[[Sequence[int]], str]],
        max_model_len: int,
        stats: ForcingStats,
    ) -> None:
        self.generate, self.prompt, self.options = generate, list(prompt), options
        self.fmt, self.budget, self.stats = fmt, budget, stats
        self.encode, self.decode = tokenizer
        self.max_model_len = max_model_len

    def _room(self, c: _Candidate) -> int:
        return min(
            self.options.max_tokens - c.generated,
            self.max_model_len - len(self.prompt) - len(c.ids),
        )

    def _think_limit(self, c: _Candidate) -> int:
        cap = self.budget.max_tokens
        return self._room(c) if cap is None else min(cap - c.thought, self._room(c))

    async def _round(
        self, group: list[_Candidate], limits: list[int], options: SamplingOptions
    ) -> list[GeneratedSequence | None]:
        """One engine call for `group`; each candidate's piece cut to its limit (None: none)."""
        self.stats.rounds += 1
        options = options.replace(max_tokens=max(limits))
        found: list[GeneratedSequence | None]
        if all(c.ids == group[0].ids for c in group):  # one prompt (the first round): N samples
            generations = await self.generate([[*self.prompt, *group[0].ids]], len(group), options)
            found = list(generations[0].sequences) if generations else []
        else:
            prompts = [[*self.prompt, *c.ids] for c in group]
            generations = await self.generate(prompts, 1, options)
            found = [g.sequences[0] if g.sequences else None for g in generations]
        found += [None] * (len(group) - len(found))
        return [
            None if p is None else self._cut(p, limit)
            for p, limit in zip(found, limits, strict=True)
        ]

    def _cut(self, piece: GeneratedSequence, limit: int) -> GeneratedSequence:
        if piece.num_tokens <= limit:
            return piece
        ids = piece.token_ids[:limit]
        return GeneratedSequence(self.decode(ids), ids, "length")

    def _append(self, c: _Candidate, text: str) -> None:
        ids = self.encode(text)
        c.ids += ids
        c.texts.append(text)
        self.stats.appended_tokens += len(ids)

    def _drop_delimiter(self, c: _Candidate, piece: GeneratedSequence) -> None:
        """Keep the piece's thinking without its end delimiter (which "Wait" replaces)."""
        ids = list(piece.token_ids)
        keep = (thinking_length(ids, self.fmt.end, self.decode) or len(ids) + 1) - 1
        end = self.fmt.end
        # The tokens before the one that completed the delimiter may hold its first characters.
        while keep and any(self.decode(ids[:keep]).endswith(end[:m]) for m in range(1, len(end))):
            keep -= 1
        c.ids += ids[:keep]
        c.texts.append(self.decode(ids[:keep]))

    def _after_thinking(self, c: _Candidate, piece: GeneratedSequence | None) -> str:
        """Take a thinking piece; say what the candidate does next: think, answer or done."""
        if piece is None:
            c.finish = "length"
            return "done"
        c.pieces.append(piece)
        c.generated += piece.num_tokens
        c.thought += piece.num_tokens
        if piece.stop_reason == self.fmt.end and piece.finish_reason == "stop":
            if c.thought < self.budget.min_tokens and c.waits < self.budget.max_waits:
                self._drop_delimiter(c, piece)
                self._append(c, self.budget.wait)
                c.waits += 1
                self.stats.waits += 1
                return "think" if self._think_limit(c) > 0 else "answer"
            c.ids += piece.token_ids
            c.texts.append(piece.text)
            return "answer"
        c.ids += piece.token_ids
        text = piece.text
        if piece.stop_reason and not self.options.include_stop and text.endswith(piece.stop_reason):
            text = text[: -len(piece.stop_reason)]  # a request stop string the client left out
        c.texts.append(text)
        cap = self.budget.max_tokens
        if piece.finish_reason == "length" and cap is not None and c.thought >= cap:
            self._append(c, self.fmt.end)  # the cap, still thinking: end it and answer
            self.stats.forced_ends += 1
            return "answer"
        c.finish, c.stop_reason = piece.finish_reason, piece.stop_reason
        return "done"

    async def run(self, n: int) -> list[GeneratedSequence]:
        candidates = [_Candidate() for _ in range(n)]
        thinking = list(candidates)
        answering: list[_Candidate] = []
        if self.budget.max_tokens == 0:  # no thinking at all: the delimiter opens the answer
            for c in candidates:
                self._append(c, self.fmt.end)
            self.stats.forced_ends += n
            thinking, answering = [], list(candidates)
        think_options = self.options.replace(stop=(*self.options.stop, self.fmt.end))
        think_options = think_options.replace(include_stop=True)
        while thinking:
            limits = [self._think_limit(c) for c in thinking]
            pieces = await self._round(thinking, limits, think_options)
            still: list[_Candidate] = []
            for c, piece in zip(thinking, pieces, strict=True):
                then = self._after_thinking(c, piece)
                (still if then == "think" else answering if then == "answer" else []).append(c)
            thinking = still
        ready = [c for c in answering if self._room(c) > 0]
        for c in answering:
            if c not in ready:
                c.finish = "length"
        if ready:
            pieces = await self._round(ready, [self._room(c) for c in ready], self.options)
            for c, piece in zip(ready, pieces, strict=True):
                if piece is None:
                    c.finish = "length"
                    continue
                c.pieces.append(piece)
                c.generated += piece.num_tokens
                c.ids += piece.token_ids
                c.texts.append(piece.text)
                c.finish, c.stop_reason = piece.finish_reason, piece.stop_reason
        return [c.sequence() for c in candidates if c.pieces or c.texts]


async def force_thinking_budget(
    generate: Generate,
    prompt: Sequence[int],
    n: int,
    options: SamplingOptions,
    fmt: ReasoningFormat,
    budget: ThinkingBudget,
    *,
    encode: Callable[[str], list[int]],
    decode: Callable[[Sequence[int]], str],
    max_model_len: int,
    stats: ForcingStats,
) -> list[GeneratedSequence]:
    """`n` candidates of `prompt`, each thinking within `budget`; `generate` is the context's
    counted engine call (prompts, n, options)."""
    forcing = _Forcing(
        generate, prompt, options, fmt, budget, (encode, decode), max_model_len, stats
    )
    return await forcing.run(n)
