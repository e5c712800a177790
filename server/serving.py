"""The serving layer: an OpenAI request becomes strategy runs, and their results a response.

Routers stay thin; everything between the parsed body and the bytes sent back happens here or in
`planning.py` (checks before any work): admission, the run itself (cancelled when the client goes
away), streaming, and the metrics of every request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, StreamingResponse

from ponder.core.engine import Engine, EngineError, EngineInputError
from ponder.core.errors import StrategyInputError
from ponder.core.reasoning import ReasoningFormat
from ponder.strategies.effort import EffortPresets
from ponder.strategies.usage import Usage
from ponder.verifiers.base import Question, Verifier, VerifierError

from .admission import Admission, AdmittedStream, Ticket
from .capacity import admission_limits, request_cost
from .errors import APIError, error_body
from .metrics import PonderMetrics
from .planning import PreparedRequest, RequestPlanner, parse_body
from .policies import PolicyStore
from .prompts import tokenize_chat, tokenize_text
from .protocol import ChatCompletionRequest, CompletionRequest
from .responses import (
    Endpoint,
    Outcome,
    reasoning_tokens,
    response_body,
    sse,
    usage_block,
)
from .responses_adapter import adapt, response_object, response_wire
from .responses_protocol import ResponsesRequest
from .responses_stream import ResponseEvents
from .settings import Settings
from .streaming import stream_chunks, stream_deltas, usage_chunk

__all__ = ["Serving"]

logger = logging.getLogger(__name__)

_LOGGED_UNKNOWN_FIELDS = 20


class Serving:
    def __init__(
        self,
        engine: Engine,
        verifiers: Mapping[str, Verifier],
        settings: Settings,
        metrics: PonderMetrics,
        policies: PolicyStore | None = None,
        *,
        reasoning: ReasoningFormat | None = None,
        presets: EffortPresets | None = None,
    ) -> None:
        self.engine = engine
        self.verifiers = verifiers
        self.settings = settings
        self.metrics = metrics
        self.policies = policies or PolicyStore(None)
        self.planner = RequestPlanner(
            engine, verifiers, settings, metrics, self.policies.current, reasoning, presets
        )
        self.admission = Admission(admission_limits(settings, engine), metrics)

    # -- entry points --------------------------------------------------------------------------

    async def chat(self, body: Any, request: Request) -> JSONResponse | StreamingResponse:
        req: ChatCompletionRequest = parse_body(ChatCompletionRequest, body)
        prepared = await self._plan_chat(req, "chat")
        return await self._respond(prepared, request)

    async def responses(self, body: Any, request: Request) -> JSONResponse | StreamingResponse:
        """`/v1/responses`: the chat pipeline under the Responses request and response shapes."""
        adapted = adapt(body)
        try:
            prepared = await self._plan_chat(adapted.chat, "responses")
            return await self._respond(prepared, request, adapted.request)
        except APIError as exc:
            raise adapted.rename(exc) from None

    async def _plan_chat(self, req: ChatCompletionRequest, endpoint: Endpoint) -> PreparedRequest:
        self._log_unknown(req)
        self.planner.check_model(req.model)
        messages = [
            {"role": m.role, "content": m.text(), **({"name": m.name} if m.name else {})}
            for m in req.messages
        ]
        prompt = await tokenize_chat(self.engine, messages, "messages")
        return self.planner.plan(req, endpoint, [(prompt, Question(tuple(messages)))], "messages")

    async def completion(self, body: Any, request: Request) -> JSONResponse | StreamingResponse:
        req: CompletionRequest = parse_body(CompletionRequest, body)
        self._log_unknown(req)
        self.planner.check_model(req.model)
        prompts = []
        for p in req.prompts():
            if isinstance(p, str):
                ids = await tokenize_text(self.engine, p, "prompt")
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
        prepared = self.planner.plan(req, "completion", prompts, "prompt")
        return await self._respond(prepared, request)

    # -- checks --------------------------------------------------------------------------------

    def _log_unknown(self, req: ChatCompletionRequest | CompletionRequest) -> None:
        if req.model_extra:
            # A few names, shortened: a hostile body may hold a million of them.
            names = sorted(req.model_extra)
            shown = ", ".join(name[:40] for name in names[:_LOGGED_UNKNOWN_FIELDS])
            more = (
                f" and {len(names) - _LOGGED_UNKNOWN_FIELDS} more"
                if len(names) > _LOGGED_UNKNOWN_FIELDS
                else ""
            )
            logger.info("ignoring unknown request fields: %s%s", shown, more)

    # -- running -------------------------------------------------------------------------------

    async def run(self, prepared: PreparedRequest) -> list[Outcome]:
        """Run the strategy on every prompt of the request, concurrently."""
        results = await asyncio.gather(*(prepared.strategy.run(c) for c in prepared.contexts))
        return [Outcome(c, r) for c, r in zip(prepared.contexts, results, strict=True)]

    def _admit(self, prepared: PreparedRequest) -> Ticket:
        """Admit the request before any response starts, or refuse it (429 full, 503 draining)."""
        try:
            return self.admission.enter(request_cost(prepared))
        except APIError as refusal:
            status = "draining" if refusal.status == 503 else "busy"
            self.metrics.requests.labels(prepared.strategy_name, status).inc()
            raise

    async def _run_admitted(self, ticket: Ticket, prepared: PreparedRequest) -> list[Outcome]:
        await ticket.acquire()
        return await self.run(prepared)

    async def _respond(
        self,
        prepared: PreparedRequest,
        request: Request,
        responses_request: ResponsesRequest | None = None,
    ) -> JSONResponse | StreamingResponse:
        ticket = self._admit(prepared)
        if prepared.stream:
            try:
                # Queued before the response starts: its status is still ours to choose.
                await _until_disconnect(ticket.acquire(), request)
            except BaseException:
                ticket.release()
                raise
            return AdmittedStream(self._stream(prepared, responses_request), ticket)
        started = time.perf_counter()
        status = "error"
        outcomes: list[Outcome] = []
        try:
            outcomes = await _until_disconnect(self._run_admitted(ticket, prepared), request)
            status = "ok"
        except asyncio.CancelledError:
            status = "cancelled"
            raise
        except Exception as exc:
            error = _client_facing(exc)
            status = "client_error" if error.status < 500 else "error"
            raise error from exc
        finally:
            ticket.release()
            self._record(prepared, outcomes, status, time.perf_counter() - started)
        if responses_request is not None:
            return JSONResponse(
                response_wire(response_object(prepared, responses_request, outcomes))
            )
        body = response_body(
            prepared.endpoint,
            response_id=prepared.response_id,
            created=prepared.created,
            model=prepared.model,
            outcomes=outcomes,
            choices=prepared.choices,
            top_logprobs=prepared.top_logprobs,
            tts=prepared.tts(outcomes),
            include_reasoning=prepared.include_reasoning,
        )
        return JSONResponse(body)

    async def _stream(
        self, prepared: PreparedRequest, responses_request: ResponsesRequest | None = None
    ) -> AsyncIterator[str]:
        """The events of an admitted stream (its slot is released by `AdmittedStream`): chat or
        completion chunks and `[DONE]`, or the Responses events."""
        started = time.perf_counter()
        status = "error"
        outcomes: list[Outcome] = []
        events = None if responses_request is None else ResponseEvents(prepared, responses_request)
        try:
            deltas = stream_deltas(
                prepared,
                self.run,
                outcomes,
                self.settings.keepalive_s,
                self.settings.progress_interval_s,
            )
            if events is not None:
                async for event in events.events(deltas, outcomes):
                    yield event
            else:
                async for chunk in stream_chunks(prepared, deltas):
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
            if events is not None:
                yield events.error(error)
            else:
                yield sse(error_body(error.status, error.message, error.param, error.code))
        finally:
            self._record(prepared, outcomes, status, time.perf_counter() - started)
        if events is None:
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
        usage = Usage.total(c.usage for c in contexts)
        m.policy_tokens.labels(name).inc(usage.completion_tokens)
        m.prompt_tokens.labels(name).inc(usage.prompt_tokens)
        m.cached_prompt_tokens.labels(name).inc(usage.cached_tokens)
        m.candidates.labels(name).inc(sum(len(o.result.candidates) for o in outcomes))
        m.engine_calls.labels(name).inc(usage.engine_calls)
        m.compute_tokens.labels(name).observe(usage.completion_tokens + usage.verifier_tokens)
        for c in contexts:
            if c.budget.exhausted is not None:
                m.budget_exhausted.labels(name, c.budget.exhausted).inc()
        for o in outcomes:
            difficulty = o.result.details.get("difficulty")
            if difficulty is not None:
                chosen = o.result.details.get("chosen_strategy", "none")
                m.difficulty_bins.labels(difficulty["bin"], chosen).inc()
        thinking = reasoning_tokens(outcomes, prepared.choices, usage.completion_tokens)
        m.reasoning_tokens.labels(name).inc(thinking)


def _client_facing(exc: BaseException) -> APIError:
    if isinstance(exc, APIError):
        return exc
    if isinstance(exc, StrategyInputError):
        return APIError(400, str(exc), param=exc.param)
    if isinstance(exc, VerifierError):
        return APIError(400, str(exc), param="tts.verifier")
    if isinstance(exc, EngineInputError):
        return APIError(400, str(exc), param=exc.param)
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
