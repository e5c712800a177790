"""The asynchronous client, `AsyncPonder`: the same calls as `Ponder`, awaited.

Retries, waits and errors follow the same rules (`_requests.py`); only the I/O differs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast

import httpx

from ._requests import (
    DONE,
    Chunk,
    ClientSettings,
    Endpoint,
    Message,
    StrategyArg,
    chat_body,
    completion_body,
    parse_event,
    raise_for_status,
    retry_delay,
    transport_error,
)
from .models import (
    ChatCompletion,
    ChatCompletionChunk,
    Completion,
    CompletionChunk,
    ProgressChunk,
    StrategyList,
)

__all__ = ["AsyncPonder"]

logger = logging.getLogger(__name__)


class AsyncPonder:
    """A Ponder server, for asyncio code; see `Ponder` for the arguments."""

    def __init__(
        self,
        base_url: str | None = None,
        *,
        api_key: str | None = None,
        model: str | None = None,
        timeout: float | httpx.Timeout = 600.0,
        max_retries: int = 2,
        headers: dict[str, str] | None = None,
        http_client: httpx.AsyncClient | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.settings = ClientSettings(base_url, api_key, timeout, max_retries, headers or {})
        self._model = model
        self._http = http_client or httpx.AsyncClient()
        self._owns_http = http_client is None
        self._sleep = sleep

    async def chat(
        self,
        messages: str | list[Message],
        *,
        strategy: StrategyArg = None,
        model: str | None = None,
        **fields: Any,
    ) -> ChatCompletion:
        body = chat_body(model or await self.model(), messages, strategy, False, fields)
        data = await self._request("POST", "/v1/chat/completions", body)
        return ChatCompletion.model_validate(data)

    async def stream_chat(
        self,
        messages: str | list[Message],
        *,
        strategy: StrategyArg = None,
        model: str | None = None,
        **fields: Any,
    ) -> AsyncIterator[ChatCompletionChunk | ProgressChunk]:
        body = chat_body(model or await self.model(), messages, strategy, True, fields)
        async for chunk in self._stream("/v1/chat/completions", body, "chat"):
            yield cast(ChatCompletionChunk | ProgressChunk, chunk)

    async def complete(
        self,
        prompt: str | list[str],
        *,
        strategy: StrategyArg = None,
        model: str | None = None,
        **fields: Any,
    ) -> Completion:
        body = completion_body(model or await self.model(), prompt, strategy, False, fields)
        return Completion.model_validate(await self._request("POST", "/v1/completions", body))

    async def stream_complete(
        self,
        prompt: str | list[str],
        *,
        strategy: StrategyArg = None,
        model: str | None = None,
        **fields: Any,
    ) -> AsyncIterator[CompletionChunk | ProgressChunk]:
        body = completion_body(model or await self.model(), prompt, strategy, True, fields)
        async for chunk in self._stream("/v1/completions", body, "completion"):
            yield cast(CompletionChunk | ProgressChunk, chunk)

    async def strategies(self) -> StrategyList:
        return StrategyList.model_validate(await self._request("GET", "/v1/strategies"))

    async def models(self) -> list[str]:
        data = await self._request("GET", "/v1/models")
        return [card["id"] for card in data["data"]]

    async def model(self) -> str:
        """The model requests name: the one given, else the first the server lists."""
        if self._model is None:
            self._model = (await self.models())[0]
        return self._model

    async def health(self) -> bool:
        return await self._probe("/health")

    async def ready(self) -> bool:
        return await self._probe("/ready")

    async def _send(self, method: str, path: str, body: Any, stream: bool) -> httpx.Response:
        request = self._http.build_request(
            method,
            f"{self.settings.base_url}{path}",
            json=body,
            headers=self.settings.http_headers(),
            timeout=self.settings.http_timeout(),
        )
        try:
            return await self._http.send(request, stream=stream)
        except httpx.TransportError as exc:
            raise transport_error(exc) from exc

    async def _wait(self, response: httpx.Response, attempt: int) -> bool:
        delay = retry_delay(response, attempt, self.settings.max_retries)
        if delay is None:
            return False
        logger.info("HTTP %s; retrying in %.1f s", response.status_code, delay)
        await self._sleep(delay)
        return True

    async def _request(self, method: str, path: str, body: Any = None) -> Any:
        attempt = 0
        while True:
            response = await self._send(method, path, body, stream=False)
            if not await self._wait(response, attempt):
                raise_for_status(response)
                return response.json()
            attempt += 1

    async def _stream(self, path: str, body: Any, endpoint: Endpoint) -> AsyncIterator[Chunk]:
        attempt = 0
        while True:
            response = await self._send("POST", path, body, stream=True)
            try:
                if response.status_code >= 400:
                    await response.aread()
                    if await self._wait(response, attempt):
                        attempt += 1
                        continue
                    raise_for_status(response)
                async for line in response.aiter_lines():
                    event = parse_event(line, endpoint)
                    if event == DONE:
                        return
                    if event is not None and not isinstance(event, str):
                        yield event
                return
            except httpx.TransportError as exc:
                raise transport_error(exc) from exc
            finally:
                await response.aclose()

    async def _probe(self, path: str) -> bool:
        response = await self._send("GET", path, None, stream=False)
        if response.status_code in (200, 503):
            return response.status_code == 200
        raise_for_status(response)
        return False

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncPonder:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
