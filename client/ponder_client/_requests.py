"""What the sync and async clients share: settings, request bodies, retries, errors, SSE.

Both clients are thin loops around these functions, so a rule (when to retry, how long to wait,
how an event becomes a typed chunk) is written once.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Literal

import httpx

from .errors import APIConnectionError, APITimeoutError, error_from_body
from .models import ChatCompletionChunk, CompletionChunk, ProgressChunk
from .options import CustomStrategy, StrategyOptions

__all__ = [
    "API_KEY_ENV",
    "BASE_URL_ENV",
    "DEFAULT_BASE_URL",
    "DONE",
    "RETRY_STATUSES",
    "Chunk",
    "ClientSettings",
    "Endpoint",
    "Message",
    "StrategyArg",
    "chat_body",
    "completion_body",
    "parse_event",
    "raise_for_status",
    "retry_delay",
    "transport_error",
    "tts_object",
]

# The server reads its key from PONDER_API_KEY; a client on the same machine reads the same.
API_KEY_ENV = "PONDER_API_KEY"
BASE_URL_ENV = "PONDER_BASE_URL"
DEFAULT_BASE_URL = "http://127.0.0.1:8000"
# A full server answers 429 and a draining or engine-less one 503, both with Retry-After.
RETRY_STATUSES = frozenset({429, 503})
DONE = "[DONE]"
Endpoint = Literal["chat", "completion"]
# Longest wait between retries when the server gives no Retry-After.
_MAX_BACKOFF_S = 8.0

Message = dict[str, Any]
Chunk = ChatCompletionChunk | CompletionChunk | ProgressChunk
# A strategy as callers give it: typed options, a `tts` dict, or just a name.
StrategyArg = StrategyOptions | dict[str, Any] | str | None


@dataclass
class ClientSettings:
    """Where the server is and how patiently to talk to it."""

    base_url: str | None = None
    api_key: str | None = None
    # Seconds for the whole response to arrive (a search can think for minutes); or an
    # `httpx.Timeout` for finer control.
    timeout: float | httpx.Timeout = 600.0
    max_retries: int = 2
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.base_url = (self.base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL).rstrip(
            "/"
        )
        if self.base_url.endswith("/v1"):
            self.base_url = self.base_url.removesuffix("/v1")
        if self.api_key is None:
            self.api_key = os.environ.get(API_KEY_ENV)

    def http_headers(self) -> dict[str, str]:
        headers = {"user-agent": "ponder-client/0.1", **self.headers}
        if self.api_key:
            headers["authorization"] = f"Bearer {self.api_key}"
        return headers

    def http_timeout(self) -> httpx.Timeout:
        if isinstance(self.timeout, httpx.Timeout):
            return self.timeout
        return httpx.Timeout(self.timeout, connect=min(self.timeout, 10.0))


def tts_object(strategy: StrategyArg) -> dict[str, Any] | None:
    if strategy is None:
        return None
    if isinstance(strategy, str):
        return {"strategy": strategy}
    if isinstance(strategy, dict):
        return CustomStrategy.model_validate(strategy).to_tts()
    return strategy.to_tts()


def _messages(messages: str | list[Message]) -> list[Message]:
    return [{"role": "user", "content": messages}] if isinstance(messages, str) else messages


def chat_body(
    model: str,
    messages: str | list[Message],
    strategy: StrategyArg,
    stream: bool,
    fields: dict[str, Any],
) -> dict[str, Any]:
    """A chat completion request. `messages` may be one user message's text."""
    body: dict[str, Any] = {"model": model, "messages": _messages(messages), **fields}
    return _finish(body, strategy, stream)


def completion_body(
    model: str,
    prompt: str | list[str],
    strategy: StrategyArg,
    stream: bool,
    fields: dict[str, Any],
) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "prompt": prompt, **fields}
    return _finish(body, strategy, stream)


def _finish(body: dict[str, Any], strategy: StrategyArg, stream: bool) -> dict[str, Any]:
    tts = tts_object(strategy)
    if tts is not None:
        body["tts"] = tts
    if stream:
        body["stream"] = True
        # The last chunk then carries usage and the `tts` block, as a non-streamed body does.
        body.setdefault("stream_options", {"include_usage": True})
    return {k: v for k, v in body.items() if v is not None}


def _retry_after(response: httpx.Response) -> float | None:
    """The server's Retry-After, in seconds: a number, or an HTTP date."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def retry_delay(response: httpx.Response, attempt: int, max_retries: int) -> float | None:
    """Seconds to wait before retrying `response`'s request, or None to give up on it."""
    if response.status_code not in RETRY_STATUSES or attempt >= max_retries:
        return None
    after = _retry_after(response)
    return after if after is not None else min(_MAX_BACKOFF_S, 0.5 * 2**attempt)


def _body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def raise_for_status(response: httpx.Response) -> None:
    """A typed exception for an error response (its body must have been read)."""
    if response.status_code < 400:
        return
    raise error_from_body(
        response.status_code,
        _body(response),
        retry_after=_retry_after(response),
        fallback=response.text[:200],
    )


def transport_error(exc: httpx.TransportError) -> APIConnectionError:
    if isinstance(exc, httpx.TimeoutException):
        return APITimeoutError(f"the request timed out: {exc}")
    return APIConnectionError(f"could not talk to the server: {exc}")


def parse_event(line: str, endpoint: Endpoint) -> Chunk | str | None:
    """One line of an event stream: a typed chunk, `DONE`, or None (comments, blank lines).

    An error event raises its typed exception."""
    if not line.startswith("data:"):
        return None  # blank separators and `: keep-alive` comments
    data = line[5:].strip()
    if data == DONE:
        return DONE
    payload = json.loads(data)
    if "error" in payload:
        raise error_from_body(None, payload)
    if payload.get("tts_progress") is not None:
        return ProgressChunk.model_validate(payload)
    if endpoint == "chat":
        return ChatCompletionChunk.model_validate(payload)
    return CompletionChunk.model_validate(payload)
