"""OpenAI request and response shapes, in OpenAI's field order, with our extensions marked.

The response models are what the server sends and what `/openapi.json` documents, Ponder's `tts`
block included, so a client can read it with the same models.

Requests accept unknown fields (clients send many we do not need) and the serving layer logs their
names. Ponder's own knobs live in one `tts` object, which each strategy validates with its own
parameter model; a handful of vLLM sampling extensions are accepted as vLLM accepts them.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from ponder.core.engine import StructuredOutput

from .output_format import logit_bias_pairs, structured_output
from .reasoning_fields import ReasoningFields

__all__ = [
    "MAX_STOP_SEQUENCES",
    "ChatCompletionChoice",
    "ChatCompletionMessageOut",
    "ChatCompletionRequest",
    "ChatCompletionResponse",
    "ChatMessage",
    "CompletionChoice",
    "CompletionRequest",
    "CompletionResponse",
    "CompletionTokensDetails",
    "DifficultyReport",
    "FieldError",
    "PolicyReport",
    "ProbeReport",
    "PromptTokensDetails",
    "StreamOptions",
    "TTSBlock",
    "TTSPromptReport",
    "TraceCandidate",
    "UsageInfo",
    "completion_id",
    "now",
]

MAX_STOP_SEQUENCES = 4


def completion_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def now() -> int:
    return int(time.time())


class FieldError(ValueError):
    """A request field is invalid in a way pydantic's own constraints do not express."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param


class _Request(BaseModel):
    model_config = ConfigDict(extra="allow")


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")

    include_usage: bool = False


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None

    def text(self) -> str:
        """The message as plain text; only text content parts are supported."""
        if self.content is None or isinstance(self.content, str):
            return self.content or ""
        parts = []
        for part in self.content:
            if part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise ValueError("only text content parts are supported")
            parts.append(part["text"])
        return "".join(parts)


class _SamplingFields(_Request):
    """Fields chat and legacy completions share, in OpenAI's order where OpenAI has them."""

    frequency_penalty: float = Field(0.0, ge=-2.0, le=2.0)
    logit_bias: dict[str, float] | None = None
    n: int = Field(1, ge=1, le=128)
    presence_penalty: float = Field(0.0, ge=-2.0, le=2.0)
    response_format: dict[str, Any] | None = None
    seed: int | None = Field(None, ge=-(2**63), le=2**63 - 1)
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    user: str | None = None

    # vLLM's sampling extensions.
    top_k: int = Field(0, ge=-1, description="vLLM extension: sample from the k most likely.")
    min_p: float = Field(0.0, ge=0.0, le=1.0, description="vLLM extension.")
    repetition_penalty: float = Field(1.0, gt=0.0, le=2.0, description="vLLM extension.")
    min_tokens: int = Field(0, ge=0, description="vLLM extension.")
    ignore_eos: bool = Field(False, description="vLLM extension: generate exactly max tokens.")

    # Ponder's extension: how to spend test-time compute on this request.
    tts: dict[str, Any] | None = Field(None, description="Ponder: strategy and its parameters.")

    _structured: StructuredOutput | None = PrivateAttr(None)

    @model_validator(mode="after")
    def _check_shared(self) -> _SamplingFields:
        if isinstance(self.stop, list) and len(self.stop) > MAX_STOP_SEQUENCES:
            raise FieldError("stop", f"at most {MAX_STOP_SEQUENCES} stop sequences are allowed")
        if self.stream_options is not None and not self.stream:
            raise FieldError("stream_options", "stream_options is only allowed with stream=true")
        logit_bias_pairs(self.logit_bias)  # the vocabulary is checked when the request is planned
        self._structured = structured_output(self.response_format)
        return self

    def structured_output(self) -> StructuredOutput | None:
        """The structured-output constraint `response_format` asks for (checked on parsing)."""
        return self._structured

    def stop_sequences(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        stops = [self.stop] if isinstance(self.stop, str) else self.stop
        return tuple(s for s in stops if s)

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class ChatCompletionRequest(_SamplingFields, ReasoningFields):
    messages: list[ChatMessage] = Field(min_length=1)
    model: str
    logprobs: bool = False
    max_completion_tokens: int | None = Field(None, ge=1)
    max_tokens: int | None = Field(None, ge=1, description="Deprecated: max_completion_tokens.")
    top_logprobs: int | None = Field(None, ge=0, le=20)
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = None

    @model_validator(mode="after")
    def _check_chat(self) -> ChatCompletionRequest:
        if self.top_logprobs is not None and not self.logprobs:
            raise FieldError("top_logprobs", "top_logprobs requires logprobs=true")
        if self.tools:
            raise FieldError("tools", "tool calling is not supported")
        for i, message in enumerate(self.messages):
            try:
                message.text()
            except ValueError as exc:
                raise FieldError(f"messages[{i}].content", str(exc)) from None
        return self

    def requested_max_tokens(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    def requested_logprobs(self) -> int | None:
        return (self.top_logprobs or 0) if self.logprobs else None


class CompletionRequest(_SamplingFields):
    model: str
    prompt: str | list[str] | list[int] | list[list[int]]
    echo: bool = False
    logprobs: int | None = Field(None, ge=0, le=5)
    max_tokens: int = Field(16, ge=1)
    suffix: str | None = None

    @model_validator(mode="after")
    def _check_completion(self) -> CompletionRequest:
        if self.echo:
            raise FieldError("echo", "echo is not supported")
        if self.suffix:
            raise FieldError("suffix", "suffix is not supported")
        if isinstance(self.prompt, list) and not self.prompt:
            raise FieldError("prompt", "prompt must not be empty")
        return self

    def prompts(self) -> list[str | list[int]]:
        """Each prompt of the request: text, or token ids."""
        p = self.prompt
        if isinstance(p, str):
            return [p]
        if all(isinstance(x, int) for x in p):
            return [list(p)]  # type: ignore[arg-type]
        return list(p)  # type: ignore[arg-type]

    def requested_max_tokens(self) -> int | None:
        return self.max_tokens

    def requested_logprobs(self) -> int | None:
        return self.logprobs


# -- responses ---------------------------------------------------------------------------------
# Bodies are built from these models and dumped with `exclude_unset=True`: a field the server did
# not set (a strategy's finding it does not make, a trace nobody asked for) is left out rather
# than sent as null.


class PromptTokensDetails(BaseModel):
    cached_tokens: int = Field(description="Prompt tokens served from the prefix cache.")


class CompletionTokensDetails(BaseModel):
    reasoning_tokens: int = Field(
        description="Tokens generated for the request but not returned (other candidates, "
        "critiques, search steps)."
    )


class UsageInfo(BaseModel):
    completion_tokens: int = Field(description="Every policy token the request generated.")
    prompt_tokens: int
    total_tokens: int
    completion_tokens_details: CompletionTokensDetails
    prompt_tokens_details: PromptTokensDetails


class TraceCandidate(BaseModel):
    """One candidate the strategy explored, as `tts.trace` lists it."""

    index: int
    text: str
    tokens: int
    finish_reason: str | None
    score: float | None
    answer: str | None = Field(description="Its extracted final answer, where one was read.")
    step_scores: list[float | None] | None = Field(
        None, description="Per step, from process verifiers; absent otherwise."
    )


class DifficultyReport(BaseModel):
    """compute_optimal: how hard the question was judged, and from what."""

    estimate: float | None = Field(description="Difficulty in [0, 1]; null for a bin-name hint.")
    bin: str
    source: Literal["probe", "hint"]


class ProbeReport(BaseModel):
    """compute_optimal: the probe's samples, their cost and vote, and how many were reused."""

    samples: int
    tokens: int
    votes: dict[str, float]
    reused: int | None = Field(None, description="Probe samples the chosen option took over.")


class PolicyReport(BaseModel):
    name: str
    version: int


# The `tts` block is built from these parts, in the order a reader wants them: what ran and what
# it cost, then what it chose, what it found, whether the budget ran out, and its trace. Pydantic
# orders the fields of a model with several bases from the last base to the first.


class _Totals(BaseModel):
    strategy: str = Field(description="The strategy that ran.")
    candidates: int = Field(description="Candidates explored, all prompts.")
    generated_tokens: int = Field(description="Policy tokens generated.")
    cached_prompt_tokens: int = Field(description="Prompt tokens served from the prefix cache.")
    engine_calls: int = Field(description="Batched engine calls.")
    verifier_calls: int = Field(description="Candidates (or steps) scored by verifiers.")
    verifier_tokens: int = Field(description="Tokens verifiers read and generated.")
    verifier_cache_hits: int = Field(description="Step scores served from the verifier cache.")


class _Choice(BaseModel):
    chosen_index: int | None = Field(None, description="Index in `trace` of the first choice.")
    scores: list[float | None] = Field(
        default_factory=list, description="Each candidate's score, in trace order."
    )


class _Findings(BaseModel):
    """What strategies report beyond their choice; each is present when the strategy makes it."""

    verifier: str | None = Field(None, description="The verifier that scored the candidates.")
    votes: dict[str, float] | None = Field(None, description="Answer to votes, most first.")
    answer_weights: dict[str, float] | None = Field(
        None, description="Weighted votes: answer to summed score."
    )
    difficulty: DifficultyReport | None = None
    chosen_strategy: str | None = Field(None, description="compute_optimal: the option run.")
    chosen_params: dict[str, Any] | None = Field(None, description="Its `tts` parameters.")
    probe: ProbeReport | None = None
    policy: PolicyReport | None = Field(None, description="The policy table that chose.")
    temperature: float | None = Field(
        None,
        description="The exploration temperature sampled at, when it replaced the request's 0 "
        "(a strategy that needs diverse samples; see --exploration-temperature).",
    )
    temperature_replaced: bool | None = Field(
        None, description="True when `temperature` replaced the request's temperature 0."
    )


class _BudgetState(BaseModel):
    budget_exhausted: Literal["tokens", "verifier_calls", "deadline"] | None = Field(
        None, description="The budget that ran out, if one did."
    )


class _Trace(BaseModel):
    trace: list[TraceCandidate] | None = Field(
        None, description="With return_trace: every candidate explored."
    )
    tree: list[dict[str, Any]] | None = Field(
        None, description="With return_trace, step-level searches: every node of the tree."
    )
    graph: list[dict[str, Any]] | None = Field(
        None, description="With return_trace, graph_of_thoughts: every operation."
    )
    history: list[dict[str, Any]] | None = Field(
        None, description="With return_trace, self_refine: each chain's answers and critiques."
    )


class TTSPromptReport(_Trace, _Findings, _Choice):
    """What the strategy chose and found for one prompt of a multi-prompt completion."""

    # Strategy-specific findings beyond the declared ones (search levels, rounds, ...).
    model_config = ConfigDict(extra="allow")


class TTSBlock(_Trace, _BudgetState, _Findings, _Choice, _Totals):
    """Ponder's extension of a response: what test-time compute was spent, and on what.

    With one prompt the choice, findings and trace are top-level; with several, each prompt's
    are in `per_prompt`.
    """

    model_config = ConfigDict(extra="allow")

    per_prompt: list[TTSPromptReport] | None = None


class ChatCompletionMessageOut(BaseModel):
    content: str
    refusal: None = None
    role: Literal["assistant"] = "assistant"
    reasoning: str | None = Field(None, description="The thinking (with --reasoning-parser).")


class ChatCompletionChoice(BaseModel):
    finish_reason: str | None
    index: int
    logprobs: dict[str, Any] | None
    message: ChatCompletionMessageOut


class ChatCompletionResponse(BaseModel):
    id: str
    choices: list[ChatCompletionChoice]
    created: int
    model: str
    object: Literal["chat.completion"] = "chat.completion"
    usage: UsageInfo
    tts: TTSBlock = Field(description="Ponder: the test-time compute spent on the request.")


class CompletionChoice(BaseModel):
    finish_reason: str | None
    index: int
    logprobs: dict[str, Any] | None
    text: str


class CompletionResponse(BaseModel):
    id: str
    choices: list[CompletionChoice]
    created: int
    model: str
    object: Literal["text_completion"] = "text_completion"
    usage: UsageInfo
    tts: TTSBlock = Field(description="Ponder: the test-time compute spent on the request.")
