"""The serving layer: an OpenAI request becomes strategy runs, and their results a response.

Routers stay thin; everything between the parsed body and the bytes sent back happens here:
model and strategy resolution, caps checked before any work starts, admission, the run itself
(cancelled when the client goes away), streaming, and the metrics of every request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import ValidationError

from ponder.strategies.base import (
    Budget,
    Strategy,
    StrategyContext,
    StrategyInputError,
    StrategyParams,
)
from ponder.strategies.registry import strategy_class
from ponder.verifiers.base import Question, Verifier, VerifierError

from .admission import Admission
from .engine import Engine, EngineError, EngineInputError, SamplingOptions
from .errors import APIError, error_body, validation_error
from .metrics import PonderMetrics
from .protocol import ChatCompletionRequest, CompletionRequest, completion_id, now
from .responses import Endpoint, Outcome, response_body, sse, tts_block, usage_block
from .settings import Settings
from .streaming import stream_chosen, stream_tokens, usage_chunk

__all__ = ["PreparedRequest", "Serving"]

logger = logging.getLogger(__name__)


@dataclass
class PreparedRequest:
    """A request that passed every check: nothing is left but to run it."""

    endpoint: Endpoint
    strategy: Strategy
    contexts: list[StrategyContext]
    choices: int
    stream: bool
    include_usage: bool
    top_logprobs: int | None
    response_id: str
    created: int
    model: str

    @property
    def strategy_name(self) -> str:
        return self.strategy.name

    def tts(self, outcomes: Sequence[Outcome]) -> dict[str, Any]:
        return tts_block(self.strategy_name, outcomes, trace=self.strategy.params.return_trace)


def parse_body(model: type[ChatCompletionRequest | CompletionRequest], body: Any) -> Any:
    if not isinstance(body, dict):
        raise APIError(400, "the request body must be a JSON object", code="invalid_body")
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise validation_error(exc) from None


class Serving:
    def __init__(
        self,
        engine: Engine,
        verifiers: Mapping[str, Verifier],
        settings: Settings,
        metrics: PonderMetrics,
    ) -> None:
        self.engine = engine
        self.verifiers = verifiers
        self.settings = settings
        self.metrics = metrics
        self.admission = Admission(
            settings.max_concurrent_requests, settings.max_queued_requests, metrics
        )

    # -- entry points --------------------------------------------------------------------------

    async def chat(self, body: Any, request: Request) -> JSONResponse | StreamingResponse:
        req: ChatCompletionRequest = parse_body(ChatCompletionRequest, body)
        self._log_unknown(req)
        messages = [
            {"role": m.role, "content": m.text(), **({"name": m.name} if m.name else {})}
            for m in req.messages
        ]
        prompt = await asyncio.to_thread(self.engine.render_chat, messages)
        prepared = self._prepare(req, "chat", [(prompt, Question(tuple(messages)))], "messages")
        return await self._respond(prepared, request)

    async def completion(self, body: Any, request: Request) -> JSONResponse | StreamingResponse:
        req: CompletionRequest = parse_body(CompletionRequest, body)
        self._log_unknown(req)
        prompts = []
        for p in req.prompts():
            if isinstance(p, str):
                ids = await asyncio.to_thread(self.engine.encode, p)
                text = p
            else:
                if any(not 0 <= t < self.engine.vocab_size for t in p):
                    raise APIError(
                        400,
                        f"prompt token ids must be in [0, {self.engine.vocab_size})",
                        param="prompt",
                    )
                ids, text = list(p), await asyncio.to_thread(self.engine.decode, p)
            prompts.append((ids, Question(({"role": "user", "content": text},))))
        prepared = self._prepare(req, "completion", prompts, "prompt")
        return await self._respond(prepared, request)

    # -- checks --------------------------------------------------------------------------------

    def _log_unknown(self, req: ChatCompletionRequest | CompletionRequest) -> None:
        if req.model_extra:
            logger.info("ignoring unknown request fields: %s", ", ".join(sorted(req.model_extra)))

    def _resolve_strategy(self, req: ChatCompletionRequest | CompletionRequest) -> Strategy:
        model, _, suffix = req.model.partition("@")
        if model != self.engine.model_name:
            raise APIError(
                404,
                f"the model {model!r} does not exist; this server serves "
                f"{self.engine.model_name!r}",
                param="model",
                code="model_not_found",
            )
        tts = dict(req.tts or {})
        named = tts.get("strategy")
        if suffix and named and named != suffix:
            raise APIError(
                400,
                f"the model name asks for strategy {suffix!r} but tts.strategy is {named!r}",
                param="tts.strategy",
            )
        tts["strategy"] = named or suffix or "none"
        if not isinstance(tts["strategy"], str):
            raise APIError(400, "tts.strategy must be a string", param="tts.strategy")
        try:
            cls = strategy_class(tts["strategy"])
            params: StrategyParams = cls.Params.model_validate(tts)
        except StrategyInputError as exc:
            param = "model" if suffix and not named else exc.param
            raise APIError(400, str(exc), param=param) from None
        except ValidationError as exc:
            raise validation_error(exc, prefix="tts") from None
        return cls(params)

    def _prepare(
        self,
        req: ChatCompletionRequest | CompletionRequest,
        endpoint: Endpoint,
        prompts: list[tuple[list[int], Question]],
        prompt_param: str,
    ) -> PreparedRequest:
        strategy = self._resolve_strategy(req)
        s = self.settings
        tokens_param = "max_completion_tokens" if endpoint == "chat" else "max_tokens"
        longest = max(len(ids) for ids, _ in prompts)
        room = self.engine.max_model_len - longest
        if room < 1 or any(not ids for ids, _ in prompts):
            raise APIError(
                400,
                f"the prompt has {longest} tokens; this model's context is "
                f"{self.engine.max_model_len} tokens and the prompt must be non-empty and leave "
                "room to generate",
                param=prompt_param,
                code="context_length_exceeded",
            )
        requested = req.requested_max_tokens()
        max_tokens = requested if requested is not None else min(s.default_max_tokens, room)
        if max_tokens > room:
            raise APIError(
                400,
                f"{tokens_param}={max_tokens} does not fit: the prompt has {longest} tokens and "
                f"the model's context is {self.engine.max_model_len}",
                param=tokens_param,
                code="context_length_exceeded",
            )
        top_logprobs = req.requested_logprobs()
        if top_logprobs is not None and top_logprobs > s.max_logprobs:
            raise APIError(
                400, f"at most {s.max_logprobs} log-probs per token are served", param="logprobs"
            )
        params = strategy.params
        for param, name in params.verifier_names().items():
            if name not in self.verifiers:
                known = ", ".join(sorted(self.verifiers)) or "none"
                raise APIError(
                    400, f"verifier {name!r} is not loaded; loaded verifiers: {known}", param=param
                )
        candidates = max(params.candidates(), req.n)
        if candidates > s.max_tts_n:
            param = "n" if req.n > params.candidates() else "tts.n"
            raise APIError(
                400,
                f"this request explores {candidates} candidates; the server allows {s.max_tts_n}",
                param=param,
            )
        if not strategy.streams_tokens and req.n > params.candidates():
            raise APIError(
                400,
                f"n={req.n} choices cannot come from {params.candidates()} candidates; "
                "raise tts.n or lower n",
                param="n",
            )
        planned = strategy.planned_tokens(max_tokens, req.n) * len(prompts)
        if params.budget.max_tokens is not None:
            planned = min(planned, params.budget.max_tokens * len(prompts))
        if planned > s.max_request_tokens:
            raise APIError(
                400,
                f"this request may generate up to {planned} tokens; the server allows "
                f"{s.max_request_tokens} per request (lower {tokens_param} or tts.n, or set "
                "tts.budget.max_tokens)",
                param=tokens_param,
            )
        deadline = params.budget.deadline_s
        if deadline is not None and deadline > s.max_deadline_s:
            raise APIError(
                400,
                f"tts.budget.deadline_s may be at most {s.max_deadline_s:g}",
                param="tts.budget.deadline_s",
            )
        options = SamplingOptions(
            max_tokens=max_tokens,
            temperature=req.temperature,
            top_p=req.top_p,
            top_k=req.top_k,
            min_p=req.min_p,
            presence_penalty=req.presence_penalty,
            frequency_penalty=req.frequency_penalty,
            repetition_penalty=req.repetition_penalty,
            stop=req.stop_sequences(),
            logprobs=top_logprobs,
            seed=req.seed,
            min_tokens=min(req.min_tokens, max_tokens),
            ignore_eos=req.ignore_eos,
        )
        response_id = completion_id("chatcmpl" if endpoint == "chat" else "cmpl")
        started = time.monotonic()
        contexts = [
            StrategyContext(
                engine=self.engine,
                verifiers=self.verifiers,
                question=question,
                prompt_token_ids=ids,
                options=options,
                budget=Budget(params.budget, started=started),
                choices=req.n,
                request_id=f"{response_id}-{i}",
                on_verifier_call=self.metrics.observe_verifier,
            )
            for i, (ids, question) in enumerate(prompts)
        ]
        return PreparedRequest(
            endpoint=endpoint,
            strategy=strategy,
            contexts=contexts,
            choices=req.n,
            stream=req.stream,
            include_usage=req.include_usage,
            top_logprobs=top_logprobs,
            response_id=response_id,
            created=now(),
            model=req.model,
        )

    # -- running -------------------------------------------------------------------------------

    async def run(self, prepared: PreparedRequest) -> list[Outcome]:
        """Run the strategy on every prompt of the request, concurrently."""
        results = await asyncio.gather(*(prepared.strategy.run(c) for c in prepared.contexts))
        return [Outcome(c, r) for c, r in zip(prepared.contexts, results, strict=True)]

    async def _respond(
        self, prepared: PreparedRequest, request: Request
    ) -> JSONResponse | StreamingResponse:
        self.admission.check()
        if prepared.stream:
            return StreamingResponse(self._stream(prepared), media_type="text/event-stream")
        started = time.perf_counter()
        status = "error"
        outcomes: list[Outcome] = []
        try:
            async with self.admission.slot():
                outcomes = await _until_disconnect(self.run(prepared), request)
            status = "ok"
        except asyncio.CancelledError:
            status = "cancelled"
            raise
        except Exception as exc:
            error = _client_facing(exc)
            status = "client_error" if error.status < 500 else "error"
            raise error from exc
        finally:
            self._record(prepared, outcomes, status, time.perf_counter() - started)
        body = response_body(
            prepared.endpoint,
            response_id=prepared.response_id,
            created=prepared.created,
            model=prepared.model,
            outcomes=outcomes,
            choices=prepared.choices,
            top_logprobs=prepared.top_logprobs,
            tts=prepared.tts(outcomes),
        )
        return JSONResponse(body)

    async def _stream(self, prepared: PreparedRequest) -> AsyncIterator[str]:
        started = time.perf_counter()
        status = "error"
        outcomes: list[Outcome] = []
        try:
            async with self.admission.slot():
                if prepared.strategy.streams_tokens and len(prepared.contexts) == 1:
                    chunks = stream_tokens(prepared, outcomes)
                else:
                    chunks = stream_chosen(prepared, self.run, outcomes, self.settings.keepalive_s)
                async for chunk in chunks:
                    yield chunk
                if prepared.include_usage:
                    usage = usage_block(outcomes, prepared.choices)
                    yield usage_chunk(prepared, usage, prepared.tts(outcomes))
            status = "ok"
        except (asyncio.CancelledError, GeneratorExit):
            status = "cancelled"
            raise
        except Exception as exc:
            error = _client_facing(exc)
            status = "client_error" if error.status < 500 else "error"
            yield sse(error_body(error.status, error.message, error.param, error.code))
        finally:
            self._record(prepared, outcomes, status, time.perf_counter() - started)
        yield sse("[DONE]")

    # -- accounting ----------------------------------------------------------------------------

    def _record(
        self, prepared: PreparedRequest, outcomes: list[Outcome], status: str, seconds: float
    ) -> None:
        m, name = self.metrics, prepared.strategy_name
        m.requests.labels(name, status).inc()
        m.request_duration.labels(name).observe(seconds)
        # Usage is counted from the contexts, so cancelled and failed work is counted too.
        contexts = prepared.contexts
        generated = sum(c.usage.completion_tokens for c in contexts)
        verifier_tokens = sum(c.usage.verifier_tokens for c in contexts)
        m.policy_tokens.labels(name).inc(generated)
        m.prompt_tokens.labels(name).inc(sum(c.usage.prompt_tokens for c in contexts))
        m.cached_prompt_tokens.labels(name).inc(sum(c.usage.cached_tokens for c in contexts))
        m.candidates.labels(name).inc(sum(len(o.result.candidates) for o in outcomes))
        m.compute_tokens.labels(name).observe(generated + verifier_tokens)
        for c in contexts:
            if c.budget.exhausted is not None:
                m.budget_exhausted.labels(name, c.budget.exhausted).inc()


def _client_facing(exc: BaseException) -> APIError:
    if isinstance(exc, APIError):
        return exc
    if isinstance(exc, StrategyInputError):
        return APIError(400, str(exc), param=exc.param)
    if isinstance(exc, VerifierError):
        return APIError(400, str(exc), param="tts.verifier")
    if isinstance(exc, EngineInputError):
        return APIError(400, str(exc))
    if isinstance(exc, EngineError):
        logger.error("engine failure: %s", exc)
        return APIError(503, "the engine is unavailable", code="engine_unavailable")
    logger.exception("request failed", exc_info=exc)
    return APIError(500, "the server failed to process the request")


async def _until_disconnect(work: Any, request: Request) -> Any:
    """Await `work`, cancelling it (and so its engine requests) if the client disconnects."""
    task = asyncio.ensure_future(work)

    async def disconnected() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    watcher = asyncio.ensure_future(disconnected())
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
        if not task.done():
            logger.info("client disconnected; aborting its engine requests")
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            raise asyncio.CancelledError
        return task.result()
    finally:
        watcher.cancel()
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
