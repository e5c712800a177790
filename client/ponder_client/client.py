"""The synchronous client: `Ponder(base_url).chat("What is 17 * 23?", strategy=BestOfN(n=8))`.

Requests refused with 429 or 503 are retried, waiting as the server's `Retry-After` says (up to
`max_retries` times); a stream is retried only before its first event. Errors come back as the
typed exceptions of `errors.py`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
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

__all__ = ["Ponder"]

logger = logging.getLogger(__name__)


class Ponder:
    """A Ponder server. `base_url` defaults to `$PONDER_BASE_URL`, else http://127.0.0.1:8000;
    `api_key` to `$PONDER_API_KEY`. `model` defaults to the one the server serves."""

    def __init__(
        self,
        base_url: str | None = None,
        *,
        api_key: str | None = None,
        model: str | None = None,
        timeout: float | httpx.Timeout = 600.0,
        max_retries: int = 2,
        headers: dict[str, str] | None = None,
        http_client: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = ClientSettings(base_url, api_key, timeout, max_retries, headers or {})
        self._model = model
        self._http = http_client or httpx.Client()
        self._owns_http = http_client is None
        self._sleep = sleep

    # -- the API ---------------------------------------------------------------------------

    def chat(
        self,
        messages: str | list[Message],
        *,
        strategy: StrategyArg = None,
        model: str | None = None,
        **fields: Any,
    ) -> ChatCompletion:
        """A chat completion; `fields` are any other request fields (max_tokens, seed, ...)."""
        body = chat_body(model or self.model, messages, strategy, False, fields)
        return ChatCompletion.model_validate(self._request("POST", "/v1/chat/completions", body))

    def stream_chat(
        self,
        messages: str | list[Message],
        *,
        strategy: StrategyArg = None,
        model: str | None = None,
        **fields: Any,
    ) -> Iterator[ChatCompletionChunk | ProgressChunk]:
        """A streamed chat completion: progress chunks while a search runs, then the answer's,
        then one without choices that carries `usage` and `tts`."""
        body = chat_body(model or self.model, messages, strategy, True, fields)
        chunks = self._stream("/v1/chat/completions", body, "chat")
        return cast(Iterator[ChatCompletionChunk | ProgressChunk], chunks)

    def complete(
        self,
        prompt: str | list[str],
        *,
        strategy: StrategyArg = None,
        model: str | None = None,
        **fields: Any,
    ) -> Completion:
        """A legacy completion of `prompt` (or of each prompt of a list)."""
        body = completion_body(model or self.model, prompt, strategy, False, fields)
        return Completion.model_validate(self._request("POST", "/v1/completions", body))

    def stream_complete(
        self,
        prompt: str | list[str],
        *,
        strategy: StrategyArg = None,
        model: str | None = None,
        **fields: Any,
    ) -> Iterator[CompletionChunk | ProgressChunk]:
        body = completion_body(model or self.model, prompt, strategy, True, fields)
        chunks = self._stream("/v1/completions", body, "completion")
        return cast(Iterator[CompletionChunk | ProgressChunk], chunks)

    def strategies(self) -> StrategyList:
        """Every strategy with its parameters' JSON schema, and the loaded verifiers."""
        return StrategyList.model_validate(self._request("GET", "/v1/strategies"))

    def models(self) -> list[str]:
        return [card["id"] for card in self._request("GET", "/v1/models")["data"]]

    @property
    def model(self) -> str:
        """The model requests name: the one given, else the first the server lists."""
        if self._model is None:
            self._model = self.models()[0]
        return self._model

    def health(self) -> bool:
        """Liveness: the engine is alive."""
        return self._probe("/health")

    def ready(self) -> bool:
        """Readiness: the engine is up and the server is not draining."""
        return self._probe("/ready")

    # -- plumbing --------------------------------------------------------------------------

    def _url(self, path: str) -> str:
        return f"{self.settings.base_url}{path}"

    def _send(self, method: str, path: str, body: Any, stream: bool) -> httpx.Response:
        request = self._http.build_request(
            method,
            self._url(path),
            json=body,
            headers=self.settings.http_headers(),
            timeout=self.settings.http_timeout(),
        )
        try:
            return self._http.send(request, stream=stream)
        except httpx.TransportError as exc:
            raise transport_error(exc) from exc

    def _wait(self, response: httpx.Response, attempt: int) -> bool:
        """After a refusal worth retrying: wait as asked and say so; else False."""
        delay = retry_delay(response, attempt, self.settings.max_retries)
        if delay is None:
            return False
        logger.info("HTTP %s; retrying in %.1f s", response.status_code, delay)
        self._sleep(delay)
        return True

    def _request(self, method: str, path: str, body: Any = None) -> Any:
        attempt = 0
        while True:
            response = self._send(method, path, body, stream=False)
            if not self._wait(response, attempt):
                raise_for_status(response)
                return response.json()
            attempt += 1

    def _stream(self, path: str, body: Any, endpoint: Endpoint) -> Iterator[Chunk]:
        attempt = 0
        while True:
            response = self._send("POST", path, body, stream=True)
            try:
                if response.status_code >= 400:
                    response.read()
                    if self._wait(response, attempt):
                        attempt += 1
                        continue
                    raise_for_status(response)
                for line in response.iter_lines():
                    event = parse_event(line, endpoint)
                    if event == DONE:
                        return
                    if event is not None and not isinstance(event, str):
                        yield event
                return
            except httpx.TransportError as exc:
                raise transport_error(exc) from exc
            finally:
                response.close()

    def _probe(self, path: str) -> bool:
        response = self._send("GET", path, None, stream=False)
        if response.status_code in (200, 503):
            return response.status_code == 200
        raise_for_status(response)
        return False

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Ponder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
