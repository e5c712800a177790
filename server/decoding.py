"""Request decoding: the one step between the bytes a client sends and the JSON the API reads.

Everything a body can do to the server before a model sees it is bounded here: its size (read in
chunks and cut off at the limit, so a huge body is never held whole), the nesting depth (Python's
parser would otherwise recurse until a RecursionError), integer literals (Python refuses to convert
more than 4,300 digits, with a ValueError), NaN and Infinity (not JSON), and text that is not
Unicode (a lone UTF-16 surrogate such as `"\\ud800"` decodes into a Python string that no tokenizer
can encode). Each becomes an OpenAI-shaped 4xx naming the field, never a 500.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from typing import Any

from fastapi import Request

from .errors import APIError
from .settings import Settings

__all__ = ["BodyLimits", "decode_json", "read_body", "request_json"]

# Bodies above this are decoded in a worker thread: the event loop keeps serving meanwhile.
_OFF_LOOP_BYTES = 256 * 1024
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class BodyLimits:
    max_bytes: int
    max_depth: int
    max_digits: int

    @classmethod
    def of(cls, settings: Settings) -> BodyLimits:
        return cls(settings.max_body_bytes, settings.max_json_depth, settings.max_number_digits)


class _LongInteger:
    """An integer literal with too many digits, kept as a marker so the field can be named."""

    def __init__(self, digits: int) -> None:
        self.digits = digits


class _NotJSON(ValueError):
    pass


def _too_large(limit: int) -> APIError:
    return APIError(413, f"the request body is larger than {limit} bytes", code="request_too_large")


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The body, refused with a 413 as soon as it is known to exceed `max_bytes`."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(max_bytes)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise _too_large(max_bytes)
        chunks.append(chunk)
    return b"".join(chunks)


def _param(loc: tuple[int | str, ...]) -> str | None:
    """('messages', 0, 'content') -> 'messages[0].content', in the client's own keys."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text or None


def _invalid(message: str, param: str | None = None, code: str = "invalid_value") -> APIError:
    return APIError(400, message, param=param, code=code)


def _check(value: Any, limits: BodyLimits) -> None:
    """Walk the decoded body (iteratively: its depth is the client's) and check every leaf."""
    pending: list[tuple[Any, tuple[int | str, ...]]] = [(value, ())]
    while pending:
        item, loc = pending.pop()
        if isinstance(item, str):
            if not item.isascii() and _SURROGATE.search(item):
                param = _param(loc)
                raise _invalid(
                    f"{param or 'the body'} holds a lone UTF-16 surrogate, which is not text",
                    param,
                )
        elif isinstance(item, _LongInteger):
            param = _param(loc)
            raise _invalid(
                f"{param or 'the body'} is an integer of {item.digits} digits; at most "
                f"{limits.max_digits} are accepted",
                param,
            )
        elif isinstance(item, (dict, list)):
            if len(loc) >= limits.max_depth:
                raise _invalid(
                    f"the request body nests arrays and objects more than {limits.max_depth} deep",
                    code="invalid_body",
                )
            if isinstance(item, dict):
                for key, child in item.items():
                    if not key.isascii() and _SURROGATE.search(key):
                        raise _invalid(
                            "a field name holds a lone UTF-16 surrogate, which is not text",
                            _param(loc),
                        )
                    pending.append((child, (*loc, key)))
            elif not all(type(x) is int for x in item):  # token-id lists: nothing to check
                pending.extend((child, (*loc, i)) for i, child in enumerate(item))


def decode_json(raw: bytes, limits: BodyLimits) -> Any:
    """The body as JSON within `limits`, or a 400 that says what is wrong with it."""

    def parse_int(text: str) -> int | _LongInteger:
        digits = len(text) - text.startswith("-")
        return int(text) if digits <= limits.max_digits else _LongInteger(digits)

    def parse_constant(name: str) -> Any:
        raise _NotJSON(f"{name} is not a JSON value")

    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _invalid("the request body is not UTF-8 text", code="invalid_json") from None
    try:
        value = json.loads(text, parse_int=parse_int, parse_constant=parse_constant)
    except RecursionError:
        raise _invalid(
            f"the request body nests arrays and objects more than {limits.max_depth} deep",
            code="invalid_body",
        ) from None
    except _NotJSON as exc:
        raise _invalid(f"the request body is not valid JSON: {exc}", code="invalid_json") from None
    except json.JSONDecodeError:
        raise _invalid("the request body is not valid JSON", code="invalid_json") from None
    _check(value, limits)
    return value


async def request_json(request: Request) -> Any:
    """Read and decode a request's JSON body within the server's limits."""
    limits = BodyLimits.of(request.app.state.settings)
    raw = await read_body(request, limits.max_bytes)
    if len(raw) > _OFF_LOOP_BYTES:
        return await asyncio.to_thread(decode_json, raw, limits)
    return decode_json(raw, limits)
