"""Typed exceptions for what a Ponder server refuses, from its OpenAI-shaped error bodies.

The server answers every failure with `{"error": {"message", "type", "param", "code"}}` and the
right status; each status gets its own class here, so callers can catch exactly what they handle
and read the offending field from `param`. Errors sent inside a stream carry no status, so their
`type` gives it.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "InternalServerError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PonderError",
    "RateLimitError",
    "ServiceUnavailableError",
    "error_from_body",
]


class PonderError(Exception):
    """Anything the client raises."""


class APIConnectionError(PonderError):
    """The server could not be reached, or the connection broke."""


class APITimeoutError(APIConnectionError):
    """The request took longer than the client's timeout."""


class APIStatusError(PonderError):
    """The server answered with an error."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str | None = None,
        param: str | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"HTTP {status}: {message}" + (f" (param: {param})" if param else ""))
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        # Seconds the server asked to wait before retrying (429 and 503), when it said.
        self.retry_after = retry_after


class BadRequestError(APIStatusError):
    """400: a field is invalid; `param` names it (`tts.n`, `messages[0].content`, ...)."""


class AuthenticationError(APIStatusError):
    """401: the API key is missing or wrong."""


class NotFoundError(APIStatusError):
    """404: an unknown model or path."""


class PayloadTooLargeError(APIStatusError):
    """413: the request body is larger than the server accepts."""


class RateLimitError(APIStatusError):
    """429: the server is at capacity; retried by the client as `Retry-After` says."""


class InternalServerError(APIStatusError):
    """500 and other 5xx the server did not name."""


class ServiceUnavailableError(APIStatusError):
    """503: the engine is down or the server is draining; retried like a 429."""


_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    404: NotFoundError,
    413: PayloadTooLargeError,
    429: RateLimitError,
    503: ServiceUnavailableError,
}
# Inside a stream the status is already 200: the error's type says which it would have been.
_STATUS_BY_TYPE = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "not_found_error": 404,
    "rate_limit_error": 429,
    "internal_error": 500,
    "service_unavailable_error": 503,
}


def error_from_body(
    status: int | None, body: Any, *, retry_after: float | None = None, fallback: str = ""
) -> APIStatusError:
    """The exception for an error body (`status` None: an error event inside a stream)."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        error = {}
    kind = error.get("type") if isinstance(error.get("type"), str) else None
    if status is None:
        status = _STATUS_BY_TYPE.get(kind or "", 500)
    cls = _BY_STATUS.get(status, InternalServerError if status >= 500 else APIStatusError)
    message = error.get("message")
    return cls(
        status,
        message if isinstance(message, str) else (fallback or f"HTTP {status}"),
        type=kind,
        param=error.get("param") if isinstance(error.get("param"), str) else None,
        code=error.get("code") if isinstance(error.get("code"), str) else None,
        retry_after=retry_after,
    )
