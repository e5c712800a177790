"""A scripted engine: returns given continuations and records every call, for exact unit tests.

Tokens are characters (token id = code point), so token counts are string lengths and every
accounting assertion can be computed by hand. It is a test double for strategy logic only; the
integration tests run the real vLLM engine.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ponder.core.candidates import MergedCandidates, candidate_options
from ponder.core.confidence import RunningGroupConfidence
from ponder.core.engine import (
    CandidateStream,
    EngineInputError,
    GeneratedSequence,
    Generation,
    SamplingOptions,
    StreamDelta,
    StreamEnd,
    TokenLogprob,
)

JUDGE_MARKER = "Proposed answer:\n"
STEP_MARKER = "Next step:\n"


@dataclass
class Call:
    prompts: list[list[int]]
    options: SamplingOptions
    n: int
    request_id: str
    deadline: float | None

    def prompt_texts(self) -> list[str]:
        return ["".join(map(chr, p)) for p in self.prompts]


@dataclass
class ScriptedEngine:
    """`texts` are handed out in order, one per generated sequence, across calls.

    `judge` maps a candidate answer to P(Yes) for self-judge prompts (recognised by their text),
    and a step to P(Yes) for step-judge prompts.
    `token_logprob` is every generated token's log-prob, unless `logprob_of` maps a
    continuation's text (after stop strings) to its tokens' log-prob. `delay` is seconds per call.
    `top_logprob`, when given, maps (sequence text, token position) to the log-prob of each of the
    `logprobs` alternatives reported for that token, so a test can script a trace's confidence
    (DeepConf's token confidence is minus that value).
    `responder`, when given, replaces `texts`: it maps (prompt text, n) to the n continuations, so a
    search test can script continuations by the partial solution they extend. Stop strings are
    honoured as vLLM does (`include_stop` keeps them), and so is `max_tokens`.
    """

    texts: list[str] = field(default_factory=list)
    judge: Callable[[str], float] | None = None
    responder: Callable[[str, int], list[str]] | None = None
    # For token-level searches: the (token id, logprob) alternatives after a prompt of token ids.
    next_tokens: Callable[[list[int]], list[tuple[int, float]]] | None = None
    token_logprob: float = -0.1
    logprob_of: Callable[[str], float] | None = None
    top_logprob: Callable[[str, int], float] | None = None
    # Seconds each token of a candidate stream takes (`stream_candidates`; 0: none).
    token_delay: float = 0.0
    # Whether candidate streams stop below a confidence floor inside the engine, as the
    # in-process vLLM engine's do (`CandidateStream.stop_below`); the floors set are recorded.
    stops_below: bool = False
    floors: list[float] = field(default_factory=list)
    delay: float = 0.0
    model_name: str = "scripted-model"
    max_model_len: int = 4096
    vocab_size: int = 0x110000
    eos_token_id: int | None = 0
    supports_seed: bool = True
    uses_local_gpu: bool = False
    version: str = "scripted"
    max_logprobs: int = 20
    streams_votes: bool = True
    max_num_seqs: int | None = 256
    kv_cache_tokens: int | None = None
    max_token_chars: int = 1
    calls: list[Call] = field(default_factory=list)
    aborted: list[str] = field(default_factory=list)
    shut_down: bool = False
    _running: set[str] = field(default_factory=set)

    # -- tokenizer: one character per token --------------------------------------------------

    def encode(self, text: str) -> list[int]:
        return [ord(c) for c in text]

    def decode(self, token_ids: Sequence[int]) -> str:
        return "".join(map(chr, token_ids))

    def render_chat(
        self,
        messages: Sequence[dict[str, Any]],
        *,
        add_generation_prompt: bool = True,
        continue_final_message: bool = False,
    ) -> list[int]:
        text = "".join(f"<{m['role']}>{m['content']}\n" for m in messages)
        return self.encode(text + ("<assistant>" if add_generation_prompt else ""))

    # -- generation ----------------------------------------------------------------------------

    @staticmethod
    def _refuse_like_vllm(options: SamplingOptions, n: int) -> None:
        """vLLM's own refusal: several samples of one prompt cannot be greedy."""
        if n > 1 and options.temperature == 0:
            raise EngineInputError(f"n must be 1 when using greedy sampling, got {n}.")

    def _next_text(self) -> str:
        if not self.texts:
            raise AssertionError("the scripted engine ran out of texts")
        return self.texts.pop(0)

    def _sequence(self, text: str, options: SamplingOptions) -> GeneratedSequence:
        stop_reason = None
        hits = [(text.find(s), s) for s in options.stop if s and s in text]
        if hits:
            at, stop_reason = min(hits)
            text = text[: at + len(stop_reason)] if options.include_stop else text[:at]
        ids = self.encode(text)[: options.max_tokens]
        finish = "length" if len(ids) < len(text) else "stop"
        if finish == "length":
            stop_reason = None
        logprob = self.token_logprob if self.logprob_of is None else self.logprob_of(text)
        logprobs = None
        if options.logprobs is not None:
            decoded = self.decode(ids)
            logprobs = tuple(
                TokenLogprob(
                    token_id=t,
                    token=chr(t),
                    logprob=logprob,
                    top=self._top(decoded, i, t, options.logprobs),
                )
                for i, t in enumerate(ids)
            )
        return GeneratedSequence(
            text=self.decode(ids),
            token_ids=tuple(ids),
            finish_reason=finish,  # type: ignore[arg-type]
            logprobs=logprobs,
            cumulative_logprob=logprob * len(ids),
            stop_reason=stop_reason,
        )

    def _top(
        self, text: str, position: int, token: int, k: int
    ) -> tuple[tuple[int, str, float], ...]:
        if self.top_logprob is None or k < 1:
            return ()
        value = self.top_logprob(text, position)
        return tuple((token + j, chr(token + j), value) for j in range(k))

    def _judge_sequence(self, prompt: str) -> GeneratedSequence:
        assert self.judge is not None, "a judge prompt reached an engine without a judge"
        if STEP_MARKER in prompt:
            judged = prompt.split(STEP_MARKER, 1)[1].split("\n\nIs the next step", 1)[0]
        else:
            judged = prompt.split(JUDGE_MARKER, 1)[1].split("\n\nIs the proposed answer", 1)[0]
        p_yes = self.judge(judged)
        top = (
            (1, "Yes", math.log(max(p_yes, 1e-12))),
            (2, "No", math.log(max(1.0 - p_yes, 1e-12))),
        )
        best = max(top, key=lambda t: t[2])
        logprob = TokenLogprob(token_id=best[0], token=best[1], logprob=best[2], top=top)
        return GeneratedSequence(
            text=best[1], token_ids=(best[0],), finish_reason="length", logprobs=(logprob,)
        )

    def _next_token(self, prompt: list[int], k: int) -> GeneratedSequence:
        """Greedy as vLLM is: the sampled token is the lowest id of highest log-prob (argmax),
        and `top` the k best by rank; equal log-probs keep the order `next_tokens` gave them."""
        assert self.next_tokens is not None
        ranked = sorted(self.next_tokens(prompt), key=lambda t: -t[1])
        top = tuple((tid, chr(tid), lp) for tid, lp in ranked[:k])
        sampled, lp = min(ranked, key=lambda t: (-t[1], t[0]))
        logprob = TokenLogprob(token_id=sampled, token=chr(sampled), logprob=lp, top=top)
        return GeneratedSequence(
            text=chr(sampled), token_ids=(sampled,), finish_reason="length", logprobs=(logprob,)
        )

    async def generate(
        self,
        prompts: Sequence[Sequence[int]],
        options: SamplingOptions,
        *,
        n: int = 1,
        request_id: str,
        deadline: float | None = None,
    ) -> list[Generation]:
        self._refuse_like_vllm(options, n)
        call = Call([list(p) for p in prompts], options, n, request_id, deadline)
        self.calls.append(call)
        ids = [f"{request_id}-{i}" for i in range(len(prompts))]
        self._running.update(ids)
        try:
            interrupted = False
            if self.delay:
                timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
                if timeout is not None and timeout < self.delay:
                    await asyncio.sleep(timeout)
                    interrupted = True
                else:
                    await asyncio.sleep(self.delay)
        except asyncio.CancelledError:
            self.aborted.extend(ids)
            raise
        finally:
            self._running.difference_update(ids)
        generations: list[Generation] = []
        for text in call.prompt_texts():
            sequences: tuple[GeneratedSequence, ...]
            if self.next_tokens is not None and options.max_tokens == 1:
                prompt = call.prompts[len(generations)]
                sequences = (self._next_token(prompt, options.logprobs or 0),)
            elif JUDGE_MARKER in text or STEP_MARKER in text:
                sequences = (self._judge_sequence(text),)
            elif interrupted:
                sequences = tuple(
                    GeneratedSequence(text="", token_ids=(), finish_reason="abort")
                    for _ in range(n)
                )
            else:
                continuations = (
                    self.responder(text, n)
                    if self.responder is not None
                    else [self._next_text() for _ in range(n)]
                )
                sequences = tuple(self._sequence(t, options) for t in continuations)
            generations.append(
                Generation(sequences, prompt_tokens=len(text), interrupted=interrupted)
            )
        return generations

    async def stream(
        self, prompt: Sequence[int], options: SamplingOptions, *, n: int = 1, request_id: str
    ) -> AsyncGenerator[StreamDelta | StreamEnd, None]:
        self._refuse_like_vllm(options, n)
        call = Call([list(prompt)], options, n, request_id, None)
        self.calls.append(call)
        texts = (
            self.responder(call.prompt_texts()[0], n)
            if self.responder is not None
            else [self._next_text() for _ in range(n)]
        )
        for index, text in enumerate(texts):
            sequence = self._sequence(text, options)
            for i, token in enumerate(sequence.token_ids):
                last = i == len(sequence.token_ids) - 1
                yield StreamDelta(
                    index=index,
                    text=chr(token),
                    token_ids=(token,),
                    logprobs=sequence.logprobs[i : i + 1] if sequence.logprobs else None,
                    finish_reason=sequence.finish_reason if last else None,
                )
        yield StreamEnd(prompt_tokens=len(prompt))

    async def stream_candidates(
        self, prompt: Sequence[int], options: SamplingOptions, *, n: int, request_id: str
    ) -> CandidateStream:
        """Candidate i is the next scripted text i (or the responder's i-th); candidates advance
        one token each in turn, as a batch does, and a stopped one is cancelled (recorded in
        `aborted`)."""
        self.calls.append(Call([list(prompt)], options, n, request_id, None))
        texts = (
            self.responder(self.decode(prompt), n)
            if self.responder is not None
            else [self._next_text() for _ in range(n)]
        )
        floor: list[float] = []
        sources = [
            self._candidate(
                text, candidate_options(options, i), f"{request_id}-{i}", len(prompt), floor
            )
            for i, text in enumerate(texts)
        ]

        async def stop_below(value: float) -> None:
            floor.append(value)
            self.floors.append(value)

        return MergedCandidates(
            sources, len(prompt), stop_below=stop_below if self.stops_below else None
        )

    async def _candidate(
        self, text: str, options: SamplingOptions, rid: str, prompt_len: int, floor: list[float]
    ) -> AsyncIterator[StreamDelta | StreamEnd]:
        sequence = self._sequence(text, options)
        window = options.confidence_window if options.logprobs else None
        group = RunningGroupConfidence(window, options.logprobs) if window else None
        self._running.add(rid)
        try:
            for i, token in enumerate(sequence.token_ids):
                # Give the other candidates their turn: tokens arrive interleaved.
                await asyncio.sleep(self.token_delay)
                if group is not None and sequence.logprobs:
                    group.add(sequence.logprobs[i : i + 1])
                    if floor and group.lowest is not None and group.lowest < floor[-1]:
                        # Ended in the engine: this token is its end-of-sequence token.
                        yield StreamDelta(
                            index=0,
                            text="",
                            token_ids=(self.eos_token_id or 0,),
                            logprobs=sequence.logprobs[i : i + 1],
                            finish_reason="stop",
                        )
                        break
                last = i == len(sequence.token_ids) - 1
                yield StreamDelta(
                    index=0,
                    text=chr(token),
                    token_ids=(token,),
                    logprobs=sequence.logprobs[i : i + 1] if sequence.logprobs else None,
                    finish_reason=sequence.finish_reason if last else None,
                    stop_reason=sequence.stop_reason if last else None,
                )
            if not sequence.token_ids:
                yield StreamDelta(index=0, text="", token_ids=(), finish_reason="stop")
            yield StreamEnd(prompt_tokens=prompt_len)
        except (asyncio.CancelledError, GeneratorExit):
            self.aborted.append(rid)
            raise
        finally:
            self._running.discard(rid)

    async def abort(self, request_ids: Iterable[str]) -> None:
        self.aborted.extend(request_ids)

    async def check_health(self) -> None:
        return None

    async def check_alive(self) -> None:
        await self.check_health()

    def metrics_collector(self) -> None:
        return None

    def running_requests(self) -> int:
        return len(self._running)

    def shutdown(self) -> None:
        self.shut_down = True
