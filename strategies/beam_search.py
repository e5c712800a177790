"""`beam_search`: token-level beam search by cumulative log-probability, as vLLM defines it.

Each step asks the engine, for every live beam at once (one batched call, prefixes from the
prefix cache), for the top 2W next tokens; the W best extensions by cumulative log-prob survive,
and a beam that emits EOS is set aside as complete. At the end the complete and live beams are
ranked by cumulative log-prob over length ** length_penalty, where length counts the prompt, as
vLLM does. The scores are those log-prob ratios, not verifier probabilities.

It follows vLLM's online beam search (`vllm/entrypoints/generate/beam_search/online.py`) tie for
tie: bf16 logits make exactly equal log-probs common, so the order in which candidates are read
and the way the best are picked decide which beams survive. tests/strategies/
test_beam_search_vllm.py runs vLLM's own code beside this one on the same log-probs.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from pydantic import Field

from ponder.core.engine import GeneratedSequence, SamplingOptions, TokenLogprob
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
    # The generated tokens as vLLM keeps them: a finished beam without its EOS.
    tokens: tuple[int, ...]
    logprob: float
    finished: bool = False


def _alternatives(position: TokenLogprob) -> dict[int, float]:
    """The next tokens in vLLM's dict order: the sampled token first, then the top ones by rank.
    With bf16 logits equal log-probs are common, and this order decides which of them survive."""
    return {position.token_id: position.logprob, **{tid: lp for tid, _, lp in position.top}}


def _best(extensions: list[_Beam], width: int) -> list[_Beam]:
    """The `width` extensions of highest cumulative log-prob, picked with vLLM's numpy calls:
    neither is a stable sort, and only the same calls break exact ties the same way."""
    logprobs = np.fromiter((b.logprob for b in extensions), np.float64, len(extensions))
    if len(extensions) <= width:
        chosen = np.argsort(-logprobs)
    else:
        chosen = np.argpartition(-logprobs, width - 1)[:width]
        chosen = chosen[np.argsort(-logprobs[chosen])]
    return [extensions[int(i)] for i in chosen]


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

    def _score(self, beam: _Beam, prompt: list[int], eos: int | None) -> float:
        # vLLM's length: prompt and kept tokens, one less when the last is EOS. A finished beam
        # keeps no EOS, but with ignore_eos a beam goes on past EOS and may end with it.
        last = beam.tokens[-1:] or tuple(prompt[-1:])
        length = len(prompt) + len(beam.tokens) - (last == (eos,))
        return beam.logprob / (max(length, 1) ** self.params.length_penalty)

    async def run(self, ctx: StrategyContext) -> StrategyResult:
        if ctx.options.stop:
            raise StrategyInputError(
                "beam_search does not apply stop sequences (nor does vLLM's); remove `stop`",
                "stop",
            )
        width = self.params.beam_width
        prompt = ctx.prompt_token_ids
        eos = ctx.engine.eos_token_id
        ends = None if ctx.options.ignore_eos else eos
        step = SamplingOptions(
            max_tokens=1, temperature=0.0, logprobs=self.params.alternatives, detokenize=False
        )
        beams = [_Beam((), 0.0)]
        complete: list[_Beam] = []
        steps = 0
        for _ in range(ctx.options.max_tokens):
            prompts = [prompt + list(b.tokens) for b in beams]
            generations = await ctx.sample(1, prompts=prompts, options=step)
            if len(generations) < len(beams):
                break
            steps += 1
            extensions: list[_Beam] = []
            for beam, generation in zip(beams, generations, strict=True):
                sequence = generation.sequences[0]
                if not sequence.logprobs:
                    continue
                for token_id, logprob in _alternatives(sequence.logprobs[0]).items():
                    if token_id == ends:
                        complete.append(_Beam(beam.tokens, beam.logprob + logprob, finished=True))
                    else:
                        extensions.append(_Beam((*beam.tokens, token_id), beam.logprob + logprob))
            beams = _best(extensions, width)
            top = max((self._score(b, prompt, eos) for b in [*complete, *beams]), default=None)
            alive = len(beams) + len(complete)
            ctx.report_progress(self.name, "token", steps, ctx.options.max_tokens, alive, top)
            if not beams:
                break
        # Stable, as vLLM's final sort: equal scores keep complete beams first, in their order.
        ranked = sorted(
            [*complete, *beams], key=lambda b: self._score(b, prompt, eos), reverse=True
        )
        best = ranked[:width]
        # Detokenising blocks: off the event loop.
        candidates = await asyncio.to_thread(
            lambda: [self._candidate(ctx, b, self._score(b, prompt, eos)) for b in best]
        )
        details = {"steps": steps, "complete": len(complete)}
        return StrategyResult(candidates, list(range(len(candidates))), details)

    def _candidate(self, ctx: StrategyContext, beam: _Beam, score: float) -> RankedCandidate:
        sequence = GeneratedSequence(
            text=ctx.engine.decode(beam.tokens),
            token_ids=beam.tokens,
            finish_reason="stop" if beam.finished else "length",
            cumulative_logprob=beam.logprob,
        )
        return RankedCandidate(sequence, score=score)
