"""`beam_search`: token-level beam search by cumulative log-probability, as vLLM defines it.

Each step asks the engine, for every live beam at once (one batched call, prefixes from the
prefix cache), for the top 2W next tokens; the W best extensions by cumulative log-prob survive,
and a beam that emits EOS is set aside as complete. At the end the complete and live beams are
ranked by cumulative log-prob over length ** length_penalty, where length counts the prompt, as
vLLM does. The scores are those log-prob ratios, not verifier probabilities.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import ClassVar

from pydantic import Field

from ponder.core.engine import GeneratedSequence, SamplingOptions
from ponder.core.errors import StrategyInputError

from .base import RankedCandidate, Strategy, StrategyParams, StrategyResult
from .context import StrategyContext

__all__ = ["BeamSearch", "BeamSearchParams"]


class BeamSearchParams(StrategyParams):
    beam_width: int = Field(4, ge=1, le=64, description="Beams kept at every token.")
    length_penalty: float = Field(
        1.0, ge=-10.0, le=10.0, description="Exponent of the length that divides a beam's score."
    )

    def candidates(self) -> int:
        return self.beam_width

    def top_logprobs_needed(self) -> dict[str, int]:
        return {"tts.beam_width": self.alternatives}

    @property
    def alternatives(self) -> int:
        """Next tokens read per beam and step: twice the width, as vLLM's beam search reads."""
        return 2 * self.beam_width


@dataclass(frozen=True)
class _Beam:
    tokens: tuple[int, ...]
    logprob: float
    finished: bool = False


class BeamSearch(Strategy):
    name: ClassVar[str] = "beam_search"
    description: ClassVar[str] = "Token-level beam search by cumulative log-prob (vLLM semantics)."
    Params: ClassVar[type[StrategyParams]] = BeamSearchParams
    params: BeamSearchParams

    def planned_tokens(self, max_tokens: int, choices: int) -> int:
        # One token per live beam per step.
        return self.params.beam_width * max_tokens

    def needs_diverse_samples(self) -> bool:
        # Beams are the most likely tokens read from log-probs: greedy by construction.
        return False

    def _score(self, beam: _Beam, prompt_len: int) -> float:
        length = prompt_len + len(beam.tokens) - (1 if beam.finished else 0)
        return beam.logprob / (max(length, 1) ** self.params.length_penalty)

    async def run(self, ctx: StrategyContext) -> StrategyResult:
        if ctx.options.stop:
            raise StrategyInputError(
                "beam_search does not apply stop sequences (nor does vLLM's); remove `stop`",
                "stop",
            )
        width = self.params.beam_width
        eos = None if ctx.options.ignore_eos else ctx.engine.eos_token_id
        step = SamplingOptions(
            max_tokens=1, temperature=0.0, logprobs=self.params.alternatives, detokenize=False
        )
        beams = [_Beam((), 0.0)]
        complete: list[_Beam] = []
        prompt_len = len(ctx.prompt_token_ids)
        steps = 0
        for _ in range(ctx.options.max_tokens):
            prompts = [ctx.prompt_token_ids + list(b.tokens) for b in beams]
            generations = await ctx.sample(1, prompts=prompts, options=step)
            if len(generations) < len(beams):
                break
            steps += 1
            extensions: list[_Beam] = []
            for beam, generation in zip(beams, generations, strict=True):
                sequence = generation.sequences[0]
                if not sequence.logprobs:
                    continue
                position = sequence.logprobs[0]
                alternatives = {tid: lp for tid, _, lp in position.top}
                alternatives.setdefault(position.token_id, position.logprob)
                for token_id, logprob in alternatives.items():
                    extended = _Beam((*beam.tokens, token_id), beam.logprob + logprob)
                    if token_id == eos:
                        complete.append(_Beam(extended.tokens, extended.logprob, finished=True))
                    else:
                        extensions.append(extended)
            # Stable: equal log-probs keep the order of their beams and alternatives.
            beams = sorted(extensions, key=lambda b: -b.logprob)[:width]
            top = max((self._score(b, prompt_len) for b in [*complete, *beams]), default=None)
            alive = len(beams) + len(complete)
            ctx.report_progress(self.name, "token", steps, ctx.options.max_tokens, alive, top)
            if not beams:
                break
        best = sorted([*complete, *beams], key=lambda b: -self._score(b, prompt_len))[:width]
        # Detokenising blocks: off the event loop.
        candidates = await asyncio.to_thread(
            lambda: [self._candidate(ctx, b, prompt_len) for b in best]
        )
        details = {"steps": steps, "complete": len(complete)}
        return StrategyResult(candidates, list(range(len(candidates))), details)

    def _candidate(self, ctx: StrategyContext, beam: _Beam, prompt_len: int) -> RankedCandidate:
        tokens = beam.tokens[:-1] if beam.finished else beam.tokens
        sequence = GeneratedSequence(
            text=ctx.engine.decode(tokens),
            token_ids=tokens,
            finish_reason="stop" if beam.finished else "length",
            cumulative_logprob=beam.logprob,
        )
        return RankedCandidate(sequence, score=self._score(beam, prompt_len))
