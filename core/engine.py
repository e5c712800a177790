"""The narrow engine protocol that strategies and verifiers are written against.

Strategies never see vLLM types: they ask for a batch of continuations of token-id prompts and get
plain dataclasses back. One implementation wraps vLLM's in-process engine (`vllm_engine.py`); the
tests drive a scripted one; remote engine pools can implement the same protocol later.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, Protocol, runtime_checkable

__all__ = [
    "CandidateStream",
    "Engine",
    "EngineError",
    "EngineInputError",
    "FinishReason",
    "GeneratedSequence",
    "Generation",
    "SamplingOptions",
    "StreamDelta",
    "StreamEnd",
    "StructuredOutput",
    "TokenLogprob",
]

FinishReason = Literal["stop", "length", "abort"]


class EngineError(RuntimeError):
    """The engine failed for a reason that is not the request's fault (it may be dead)."""


class EngineInputError(ValueError):
    """The engine refused the request's input (its message is safe to show the client).

    `param` names the request field at fault when the engine says which (vLLM's validation errors
    name the sampling parameter, which is the OpenAI field of the same name).
    """

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


@dataclass(frozen=True)
class StructuredOutput:
    """Constrain every sampled sequence to JSON: any JSON object, or one valid under a schema.

    The schema is kept as its JSON text so that options stay hashable and comparable.
    """

    kind: Literal["json_object", "json_schema"]
    json_schema: str | None = None


@dataclass(frozen=True)
class SamplingOptions:
    """How to sample one batch; mirrors the OpenAI and vLLM sampling fields we support."""

    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    min_p: float = 0.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    repetition_penalty: float = 1.0
    stop: tuple[str, ...] = ()
    # Alternatives to report per generated token; 0 reports only the sampled token's log-prob.
    logprobs: int | None = None
    seed: int | None = None
    min_tokens: int = 0
    ignore_eos: bool = False
    # (token id, bias) pairs added to the logits before sampling, as OpenAI's `logit_bias`.
    logit_bias: tuple[tuple[int, float], ...] = ()
    # Structured-output decoding; only for sequences that start the answer (a continuation of a
    # partial answer would restart the grammar).
    structured: StructuredOutput | None = None
    # Keep the matched stop string in the text (searches continue after a step delimiter).
    include_stop: bool = False
    # Produce text; a search that only reads token ids and log-probs skips detokenising.
    detokenize: bool = True
    # Whether the log-probs' token texts are read, or only their values (a verifier's confidence):
    # an engine may then leave `TokenLogprob.token` and the alternatives' texts empty.
    logprob_texts: bool = True
    # Lets `CandidateStream.stop_below` stop candidates inside the engine: it then tracks each
    # sequence's group confidence over this many tokens, from its top `logprobs` alternatives
    # (core/confidence.py), and ends a sequence at the first token whose group falls below.
    confidence_window: int | None = None

    def replace(self, **changes: Any) -> SamplingOptions:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class TokenLogprob:
    token_id: int
    token: str
    logprob: float
    # (token_id, token text, logprob) of the most likely alternatives, best first.
    top: tuple[tuple[int, str, float], ...] = ()


@dataclass(frozen=True)
class GeneratedSequence:
    text: str
    token_ids: tuple[int, ...]
    finish_reason: FinishReason
    logprobs: tuple[TokenLogprob, ...] | None = None
    cumulative_logprob: float | None = None
    # The stop string that ended the sequence; None when it ended at EOS or its length.
    stop_reason: str | None = None
    # Set once a reasoning format split the sequence (core/reasoning.py): `text` is then the
    # answer alone, `reasoning` the thinking, and `content_tokens` how many tokens the answer is.
    reasoning: str | None = None
    content_tokens: int | None = None

    @property
    def num_tokens(self) -> int:
        return len(self.token_ids)

    @property
    def returned_tokens(self) -> int:
        """Tokens of this sequence a response returns as content (all, unless split)."""
        return self.num_tokens if self.content_tokens is None else self.content_tokens

    @property
    def mean_logprob(self) -> float | None:
        if not self.logprobs:
            return None
        return sum(t.logprob for t in self.logprobs) / len(self.logprobs)


@dataclass(frozen=True)
class Generation:
    """All continuations of one prompt, and what the engine did to produce them."""

    sequences: tuple[GeneratedSequence, ...]
    prompt_tokens: int
    cached_tokens: int = 0
    # True when the deadline stopped generation and `sequences` hold what was done by then.
    interrupted: bool = False

    @property
    def generated_tokens(self) -> int:
        return sum(s.num_tokens for s in self.sequences)


@dataclass(frozen=True)
class StreamDelta:
    """New tokens of one sequence of a streamed generation."""

    index: int
    text: str
    token_ids: tuple[int, ...]
    logprobs: tuple[TokenLogprob, ...] | None = None
    finish_reason: FinishReason | None = None
    # The stop string that ended the sequence, on its last delta (a search continues after it).
    stop_reason: str | None = None
    # Thinking, when a reasoning format split the delta: `text` is then the answer's part.
    reasoning: str | None = None


@dataclass(frozen=True)
class StreamEnd:
    """The last item of a streamed generation: every sequence finished, and what the prompt cost."""

    prompt_tokens: int
    cached_tokens: int = 0


class CandidateStream(Protocol):
    """N candidates of one prompt generated together (`Engine.stream_candidates`): their deltas
    in arrival order (`index` is the candidate; each one's last delta has its finish reason,
    "abort" when stopped), then one `StreamEnd` summed over them. Leaving it as an async context
    manager stops whatever still runs. `candidates.py` implements it for every engine."""

    n: int

    def running(self) -> list[int]:
        """Candidates not finished or stopped yet."""
        ...

    async def stop(self, indices: Iterable[int] | None = None) -> None:
        """Stop these candidates (default: all that still run); their last deltas follow, with
        every token the engine generated for them."""
        ...

    async def stop_below(self, floor: float) -> None:
        """From now on, have the engine end each running candidate at the first token where its
        group confidence (over `SamplingOptions.confidence_window` tokens) is below `floor`,
        with no lag; it ends as stopped at an end-of-sequence token, "stop". An engine that
        cannot does nothing: the caller still watches the tokens and stops candidates itself,
        which reaches the engine some tokens late."""
        ...

    def __aiter__(self) -> AsyncIterator[StreamDelta | StreamEnd]: ...

    async def __anext__(self) -> StreamDelta | StreamEnd: ...

    async def aclose(self) -> None: ...

    async def __aenter__(self) -> CandidateStream: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


@runtime_checkable
class Engine(Protocol):
    """What a strategy may ask of a text-generation engine."""

    model_name: str
    max_model_len: int
    vocab_size: int
    eos_token_id: int | None
    # Whether a per-request seed is honoured; if not, the engine samples unseeded.
    supports_seed: bool
    # Whether the engine holds a share of this machine's GPU memory (the in-process engine on a
    # GPU); the verifiers' shares are checked against what it leaves.
    uses_local_gpu: bool
    # The engine's software version (vLLM's, for the in-process engine), which
    # `ponder_build_info` reports as `engine_version`.
    version: str
    # The most alternatives per token the engine reports (`SamplingOptions.logprobs`).
    max_logprobs: int
    # Whether a streamed vote may read several samples from one `stream` and close it early: a
    # remote engine's closed multi-sample stream was seen to keep its vLLM requests running
    # after a client disconnect, so it answers streamed votes on the batched path.
    streams_votes: bool
    # What the engine runs at once, for admission's defaults (None where the engine does not say):
    # sequences (vLLM's max_num_seqs) and KV-cache tokens (blocks x block size), summed over the
    # engine's replicas or servers.
    max_num_seqs: int | None
    kv_cache_tokens: int | None

    @property
    def max_token_chars(self) -> int:
        """The most characters one token covers: a text longer than max_model_len times this
        surely does not fit, and is refused without tokenising it."""
        ...

    async def generate(
        self,
        prompts: Sequence[Sequence[int]],
        options: SamplingOptions,
        *,
        n: int = 1,
        request_id: str,
        deadline: float | None = None,
    ) -> list[Generation]:
        """Continue each prompt `n` times, all in one batch; one Generation per prompt, in order.

        `deadline` is a `time.monotonic()` instant: when it passes, generation is aborted and
        what was produced so far comes back with `interrupted=True`.
        """
        ...

    def stream(
        self, prompt: Sequence[int], options: SamplingOptions, *, n: int = 1, request_id: str
    ) -> AsyncGenerator[StreamDelta | StreamEnd, None]:
        """Continue one prompt `n` times, yielding tokens as they are produced, then one
        `StreamEnd` once every sequence has finished."""
        ...

    async def stream_candidates(
        self, prompt: Sequence[int], options: SamplingOptions, *, n: int, request_id: str
    ) -> CandidateStream:
        """Start `n` candidates of one prompt together, each its own engine request (so each can
        be stopped alone; see `candidates.py`), and stream their tokens as they are produced."""
        ...

    async def abort(self, request_ids: Iterable[str]) -> None: ...

    async def check_health(self) -> None:
        """Readiness: raise EngineError if the engine cannot serve now."""
        ...

    async def check_alive(self) -> None:
        """Liveness: raise EngineError if only a restart of this process can help (an
        in-process engine that died). An engine whose remote servers are down is alive but not
        ready, so an orchestrator does not restart Ponder for a fleet's outage."""
        ...

    def metrics_collector(self) -> Any | None:
        """A Prometheus collector of the engine's own series (per remote server, say), shown on
        /metrics beside Ponder's; None when it has none."""
        ...

    def running_requests(self) -> int:
        """Engine requests started through this object and not yet finished or aborted."""
        ...

    def render_chat(
        self,
        messages: Sequence[dict[str, Any]],
        *,
        add_generation_prompt: bool = True,
        continue_final_message: bool = False,
    ) -> list[int]: ...

    def encode(self, text: str) -> list[int]: ...

    def decode(self, token_ids: Sequence[int]) -> str: ...

    def shutdown(self) -> None:
        """Stop the engine and free what it holds; the server calls it once, at exit."""
        ...
