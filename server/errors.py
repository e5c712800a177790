"""Errors in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}`.

Every failure a client can see goes through here, so statuses are right, `param` names the field
in the client's own terms, and no message carries a path, a traceback or an internal name.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

__all__ = [
    "APIError",
    "error_body",
    "install_error_handlers",
    "param_from_loc",
    "validation_error",
]

logger = logging.getLogger(__name__)

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    500: "internal_error",
    503: "service_unavailable_error",
}


class APIError(Exception):
    """An error to send to the client as is."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code or _default_code(status)
        self.headers = headers

    def response(self) -> JSONResponse:
        return JSONResponse(
            error_body(self.status, self.message, self.param, self.code),
            status_code=self.status,
            headers=self.headers,
        )


def _default_code(status: int) -> str:
    return {
        400: "invalid_value",
        401: "invalid_api_key",
        404: "not_found",
        429: "server_busy",
        500: "internal_error",
        503: "engine_unavailable",
    }.get(status, "error")


def error_body(status: int, message: str, param: str | None, code: str | None) -> dict[str, Any]:
    return {
        "error": {
            "message": message,
            "type": _TYPES.get(status, "invalid_request_error"),
            "param": param,
            "code": code or _default_code(status),
        }
    }


def param_from_loc(loc: tuple[int | str, ...], prefix: str = "") -> str | None:
    """('body', 'messages', 0, 'content') -> 'messages[0].content'."""
    parts = [p for p in loc if p not in ("body", "__root__")]
    text = prefix
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        elif str(part).startswith(("function-", "union[", "list[", "dict[", "str", "int")):
            # pydantic names the union member it tried; the client does not care.
            continue
        else:
            text += f".{part}" if text else str(part)
    return text or None


_PYDANTIC_CODES = {
    "missing": "missing_required_parameter",
    "extra_forbidden": "unknown_parameter",
    "json_invalid": "invalid_json",
}


def validation_error(exc: ValidationError | RequestValidationError, prefix: str = "") -> APIError:
    """The first problem of a pydantic error, as a 400 naming the field."""
    first = exc.errors()[0]
    ctx_error = (first.get("ctx") or {}).get("error")
    param = getattr(ctx_error, "param", None)
    if param is None:
        param = param_from_loc(tuple(first.get("loc", ())), prefix)
    elif prefix:
        param = f"{prefix}.{param}"
    message = str(ctx_error) if ctx_error is not None else first.get("msg", "invalid value")
    kind = first.get("type", "")
    if kind == "missing":
        message = f"missing required parameter {param!r}"
    elif kind == "extra_forbidden":
        message = f"unknown parameter {param!r}"
    elif param and ctx_error is None:
        message = f"invalid value for {param!r}: {message}"
    return APIError(400, message, param=param, code=_PYDANTIC_CODES.get(kind, "invalid_value"))


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api_error(_: Request, exc: APIError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _request_validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return validation_error(exc).response()

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        headers = dict(exc.headers) if exc.headers else None
        return APIError(exc.status_code, message, headers=headers).response()

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error", exc_info=exc)
        return APIError(500, "the server failed to process the request").response()
