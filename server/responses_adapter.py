"""`/v1/responses` as a thin adapter over the chat pipeline.

A Responses request becomes the chat request it means (input items as messages, `instructions`
as the system message, `max_output_tokens`, `text.format` as `response_format`, `reasoning.effort`
as `reasoning_effort`, `tts` as is), which is planned, admitted and run exactly as chat is; the
chosen answer then becomes a Responses object. Errors found on the chat side name the chat field,
so `rename` turns them back into the Responses field the client sent.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from .errors import APIError
from .planning import PreparedRequest, parse_body
from .protocol import ChatCompletionRequest
from .responses import Outcome, usage_block, wire
from .responses_protocol import (
    IncompleteDetails,
    InputTokensDetails,
    OutputTokensDetails,
    ResponseObject,
    ResponseOutputMessage,
    ResponseOutputText,
    ResponseReasoningItem,
    ResponseReasoningText,
    ResponsesRequest,
    ResponsesText,
    ResponseUsage,
)

__all__ = [
    "AdaptedRequest",
    "adapt",
    "new_message_id",
    "new_reasoning_id",
    "reasoning_item",
    "renamed",
    "response_object",
    "response_wire",
]

_ROLES = ("user", "system", "developer", "assistant")
_TEXT_PARTS = ("input_text", "output_text", "text")
# Responses fields with their own meaning here, and chat fields a Responses client must not set
# through extra fields (they would change the shape of the answer): never passed to chat.
_NOT_PASSED = frozenset(
    {
        *ResponsesRequest.model_fields,
        "messages",
        "n",
        "max_tokens",
        "max_completion_tokens",
        "response_format",
        "reasoning_effort",
        "logprobs",
        "stream_options",
    }
)
# Chat fields to the Responses field a client sent (prefixes; the longest match wins).
_PARAMS = {
    "max_completion_tokens": "max_output_tokens",
    "reasoning_effort": "reasoning.effort",
    "response_format.json_schema": "text.format",
    "response_format": "text.format",
}
_MESSAGE_PARAM = re.compile(r"^messages\[(\d+)\](.*)$")


@dataclass(frozen=True)
class AdaptedRequest:
    """A Responses request and the chat request it was turned into."""

    request: ResponsesRequest
    chat: ChatCompletionRequest

    def rename(self, error: APIError) -> APIError:
        return renamed(error, self.request)


def renamed(error: APIError, req: ResponsesRequest) -> APIError:
    """`error`, naming the Responses field where the chat pipeline named a chat field."""
    param = _responses_param(error.param, req.instructions is not None, isinstance(req.input, str))
    message = error.message
    for chat_name, name in _PARAMS.items():
        message = message.replace(chat_name, name)
    if param == error.param and message == error.message:
        return error
    return APIError(error.status, message, param=param, code=error.code, headers=error.headers)


def _responses_param(param: str | None, has_instructions: bool, text_input: bool) -> str | None:
    if param is None:
        return None
    if (m := _MESSAGE_PARAM.match(param)) is not None:
        index = int(m.group(1)) - (1 if has_instructions else 0)
        if index < 0:
            return "instructions"
        return "input" if text_input else f"input[{index}]{m.group(2)}"
    if param == "messages":
        return "input"
    for chat_name in sorted(_PARAMS, key=len, reverse=True):
        if param == chat_name or param.startswith(chat_name + "."):
            return _PARAMS[chat_name] + param[len(chat_name) :]
    return param


def _item_text(item: dict[str, Any], where: str) -> str:
    content = item.get("content")
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise APIError(400, "an input message's content must be text or parts", param=where)
    texts = []
    for j, part in enumerate(content):
        if (
            not isinstance(part, dict)
            or part.get("type") not in _TEXT_PARTS
            or not isinstance(part.get("text"), str)
        ):
            raise APIError(
                400, "only text content parts are supported", param=f"{where}.content[{j}]"
            )
        texts.append(part["text"])
    return "".join(texts)


def _messages(req: ResponsesRequest) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    if req.instructions is not None:
        messages.append({"role": "system", "content": req.instructions})
    if isinstance(req.input, str):
        return [*messages, {"role": "user", "content": req.input}]
    for i, item in enumerate(req.input):
        where = f"input[{i}]"
        if item.get("type", "message") != "message" or item.get("role") not in _ROLES:
            raise APIError(
                400,
                "only message input items (role user, system, developer or assistant) are "
                "supported",
                param=where,
            )
        messages.append({"role": item["role"], "content": _item_text(item, where)})
    return messages


def _response_format(text_format: dict[str, Any] | None) -> dict[str, Any] | None:
    """`text.format` in chat's `response_format` shape (json_schema's fields are nested there)."""
    if text_format is None or text_format.get("type") != "json_schema":
        return text_format
    nested = {k: v for k, v in text_format.items() if k != "type"}
    return {"type": "json_schema", "json_schema": nested}


def adapt(body: Any) -> AdaptedRequest:
    """The Responses body, validated, and the chat request it means (a 400 naming the Responses
    field otherwise)."""
    req: ResponsesRequest = parse_body(ResponsesRequest, body)
    chat: dict[str, Any] = {
        k: v for k, v in (req.model_extra or {}).items() if k not in _NOT_PASSED
    }
    chat.update(model=req.model, messages=_messages(req), stream=req.stream)
    optional = {
        "max_completion_tokens": req.max_output_tokens,
        "temperature": req.temperature,
        "top_p": req.top_p,
        "user": req.user,
        "tts": req.tts,
        "reasoning_effort": req.reasoning.effort if req.reasoning else None,
        "response_format": _response_format(req.text.format if req.text else None),
    }
    chat.update({k: v for k, v in optional.items() if v is not None})
    try:
        return AdaptedRequest(req, parse_body(ChatCompletionRequest, chat))
    except APIError as exc:
        raise renamed(exc, req) from None


def response_wire(response: ResponseObject) -> dict[str, Any]:
    """A Responses object as sent: every field, and `tts` (as `wire` sends it) once there is one."""
    body = response.model_dump(mode="json", exclude={"tts"})
    if response.tts is not None:
        body["tts"] = wire(response.tts)
    return body


def new_message_id() -> str:
    return f"msg_{uuid.uuid4().hex}"


def new_reasoning_id() -> str:
    return f"rs_{uuid.uuid4().hex}"


def reasoning_item(
    text: str, status: Literal["in_progress", "completed", "incomplete"], item_id: str
) -> ResponseReasoningItem:
    return ResponseReasoningItem(
        id=item_id, content=[ResponseReasoningText(text=text)], status=status
    )


def response_object(
    prepared: PreparedRequest,
    req: ResponsesRequest,
    outcomes: Sequence[Outcome] | None,
    *,
    message_id: str | None = None,
    reasoning_id: str | None = None,
) -> ResponseObject:
    """The Responses object: in progress (no outcomes yet) or finished, with usage and `tts`; the
    chosen candidate's thinking, when a reasoning parser split it off, is a reasoning item before
    the message."""
    echo: dict[str, Any] = {
        "id": prepared.response_id,
        "created_at": prepared.created,
        "error": None,
        "object": "response",
        "parallel_tool_calls": False,
        "previous_response_id": None,
        "store": False,
        "tool_choice": "none",
        "tools": [],
        "truncation": "disabled",
        "instructions": req.instructions,
        "max_output_tokens": req.max_output_tokens,
        "metadata": req.metadata,
        "model": prepared.model,
        "reasoning": req.reasoning,
        "temperature": req.temperature if req.temperature is not None else 1.0,
        "text": req.text or ResponsesText(format={"type": "text"}),
        "top_p": req.top_p if req.top_p is not None else 1.0,
        "user": req.user,
    }
    if outcomes is None:
        return ResponseObject(
            incomplete_details=None, output=[], status="in_progress", usage=None, **echo
        )
    chosen = outcomes[0].chosen(1)[0].sequence
    status: Literal["completed", "incomplete"] = (
        "incomplete" if chosen.finish_reason in ("length", "abort") else "completed"
    )
    message = ResponseOutputMessage(
        id=message_id or new_message_id(),
        content=[ResponseOutputText(text=chosen.text)],
        status=status,
    )
    output: list[ResponseReasoningItem | ResponseOutputMessage] = [message]
    if prepared.include_reasoning and chosen.reasoning is not None:
        thinking = reasoning_item(chosen.reasoning, status, reasoning_id or new_reasoning_id())
        output.insert(0, thinking)
    usage = usage_block(outcomes, prepared.choices)
    return ResponseObject(
        incomplete_details=IncompleteDetails(reason="max_output_tokens")
        if status == "incomplete"
        else None,
        output=output,
        status=status,
        usage=ResponseUsage(
            input_tokens=usage.prompt_tokens,
            input_tokens_details=InputTokensDetails(
                cache_write_tokens=0, cached_tokens=usage.prompt_tokens_details.cached_tokens
            ),
            output_tokens=usage.completion_tokens,
            output_tokens_details=OutputTokensDetails(
                reasoning_tokens=usage.completion_tokens_details.reasoning_tokens
            ),
            total_tokens=usage.total_tokens,
        ),
        tts=prepared.tts(outcomes),
        **echo,
    )
