"""OpenAI Responses API shapes (`POST /v1/responses`), in OpenAI's field order, plus our `tts`.

Ponder's Responses endpoint is stateless: nothing is stored, so `store` is false and a request
that needs stored state (`previous_response_id`, `conversation`, `background`, `store: true`) is
refused with a 400 naming the field. Tools are refused as on chat. Everything else maps onto a chat
request (see `responses_adapter.py`); these models are what is parsed and sent.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .output_format import OutputFormatError
from .protocol import CompletionTokensDetails, TTSBlock

__all__ = [
    "InputTokensDetails",
    "OutputTokensDetails",
    "ResponseObject",
    "ResponseOutputMessage",
    "ResponseOutputText",
    "ResponseReasoningItem",
    "ResponseReasoningText",
    "ResponseUsage",
    "ResponsesReasoning",
    "ResponsesRequest",
    "ResponsesText",
]

# Fields OpenAI's Responses API has (so the models here do not declare them) whose use needs state
# Ponder does not keep: stored conversations and stored prompt templates.
_STATEFUL = ("conversation", "prompt")


class ResponsesReasoning(BaseModel):
    model_config = ConfigDict(extra="allow")

    effort: str | None = None
    summary: str | None = None


class ResponsesText(BaseModel):
    model_config = ConfigDict(extra="allow")

    format: dict[str, Any] | None = None
    verbosity: str | None = None


class ResponsesRequest(BaseModel):
    """The request body; unknown fields are accepted, and the vLLM sampling extensions among
    them (`top_k`, `seed`, `logit_bias`, ...) reach the chat pipeline as they would on chat."""

    model_config = ConfigDict(extra="allow")

    background: bool | None = None
    include: list[str] | None = None
    input: str | list[dict[str, Any]]
    instructions: str | None = None
    max_output_tokens: int | None = Field(None, ge=1)
    metadata: dict[str, str] | None = None
    model: str
    parallel_tool_calls: bool | None = None
    previous_response_id: str | None = None
    reasoning: ResponsesReasoning | None = None
    store: bool | None = None
    stream: bool = False
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    text: ResponsesText | None = None
    tool_choice: Any = None
    tools: list[dict[str, Any]] | None = None
    top_logprobs: int | None = Field(None, ge=0, le=20)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    truncation: Literal["auto", "disabled"] | None = None
    user: str | None = None

    # Ponder's extension: how to spend test-time compute on this request.
    tts: dict[str, Any] | None = Field(None, description="Ponder: strategy and its parameters.")

    @model_validator(mode="after")
    def _check_stateless(self) -> ResponsesRequest:
        if self.previous_response_id is not None:
            raise OutputFormatError(
                "previous_response_id",
                "previous_response_id is not supported: this server stores no responses "
                "(send the conversation as input items instead)",
            )
        if self.store:
            raise OutputFormatError(
                "store", "store=true is not supported: this server stores no responses"
            )
        if self.background:
            raise OutputFormatError("background", "background responses are not supported")
        for name in _STATEFUL:
            if (self.model_extra or {}).get(name) is not None:
                raise OutputFormatError(name, f"{name} is not supported: this server is stateless")
        if self.tools:
            raise OutputFormatError("tools", "tool calling is not supported")
        if self.truncation == "auto":
            raise OutputFormatError(
                "truncation",
                "truncation='auto' is not supported; a prompt that does not fit is refused",
            )
        if self.top_logprobs or "message.output_text.logprobs" in (self.include or ()):
            raise OutputFormatError(
                "top_logprobs" if self.top_logprobs else "include",
                "log-probs are not supported on /v1/responses",
            )
        if isinstance(self.input, str) and not self.input:
            raise OutputFormatError("input", "input must not be empty")
        if isinstance(self.input, list) and not self.input:
            raise OutputFormatError("input", "input must hold at least one item")
        return self


# -- the response ------------------------------------------------------------------------------


class ResponseOutputText(BaseModel):
    annotations: list[dict[str, Any]] = Field(default_factory=list)
    text: str
    type: Literal["output_text"] = "output_text"
    logprobs: list[dict[str, Any]] = Field(default_factory=list)


class ResponseOutputMessage(BaseModel):
    id: str
    content: list[ResponseOutputText]
    role: Literal["assistant"] = "assistant"
    status: Literal["in_progress", "completed", "incomplete"]
    type: Literal["message"] = "message"


class ResponseReasoningText(BaseModel):
    text: str
    type: Literal["reasoning_text"] = "reasoning_text"


class ResponseReasoningItem(BaseModel):
    """The chosen candidate's thinking (with a reasoning parser), before the message, as vLLM's
    Responses server returns it: the text itself, no summary and nothing encrypted."""

    id: str
    summary: list[dict[str, Any]] = Field(default_factory=list)
    type: Literal["reasoning"] = "reasoning"
    content: list[ResponseReasoningText]
    encrypted_content: None = None
    status: Literal["in_progress", "completed", "incomplete"]


class InputTokensDetails(BaseModel):
    cache_write_tokens: int = Field(
        0, description="Always 0: Ponder has no prompt cache that a request writes explicitly."
    )
    cached_tokens: int = Field(description="Input tokens served from the prefix cache.")


# The same field and meaning as chat's `completion_tokens_details`.
OutputTokensDetails = CompletionTokensDetails


class ResponseUsage(BaseModel):
    input_tokens: int
    input_tokens_details: InputTokensDetails
    output_tokens: int = Field(description="Every policy token the request generated.")
    output_tokens_details: OutputTokensDetails
    total_tokens: int


class IncompleteDetails(BaseModel):
    reason: Literal["max_output_tokens"]


class ResponseObject(BaseModel):
    id: str
    created_at: int
    error: dict[str, Any] | None = None
    incomplete_details: IncompleteDetails | None = None
    instructions: str | None = None
    max_output_tokens: int | None = None
    metadata: dict[str, str] | None = None
    model: str
    object: Literal["response"] = "response"
    output: list[ResponseReasoningItem | ResponseOutputMessage]
    parallel_tool_calls: bool = False
    previous_response_id: None = None
    reasoning: ResponsesReasoning | None = None
    status: Literal["completed", "failed", "in_progress", "incomplete"]
    store: bool = False
    temperature: float | None = None
    text: ResponsesText | None = None
    tool_choice: Literal["none"] = "none"
    tools: list[dict[str, Any]] = Field(default_factory=list)
    top_p: float | None = None
    truncation: Literal["disabled"] = "disabled"
    usage: ResponseUsage | None = None
    user: str | None = None
    tts: TTSBlock | None = Field(
        None, description="Ponder: the test-time compute spent (on the finished response)."
    )
