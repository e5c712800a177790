"""HTTP routes: thin wrappers that hand the parsed body to the serving layer."""

from __future__ import annotations

import secrets
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from ponder.core.engine import EngineError
from ponder.strategies.registry import STRATEGIES, strategy_class

from .decoding import request_json
from .errors import APIError
from .protocol import ChatCompletionResponse, CompletionResponse
from .responses_protocol import ResponseObject
from .serving import Serving

__all__ = ["require_api_key", "router"]


def _serving(request: Request) -> Serving:
    serving: Serving = request.app.state.serving
    return serving


async def require_api_key(request: Request) -> None:
    """The API key check of /v1 (and, by settings, of /metrics and the docs)."""
    key = request.app.state.settings.api_key
    if key is None:
        return
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not secrets.compare_digest(token.encode(), key.encode()):
        raise APIError(401, "a valid API key is required", code="invalid_api_key")


router = APIRouter()
v1 = APIRouter(prefix="/v1", dependencies=[Depends(require_api_key)])


# The body is read as JSON and validated by the serving layer (so that bad input gets OpenAI's
# error shape); the response models document what comes back, `tts` block included.
_STREAM = "With stream=true, server-sent events of chunks, then `data: [DONE]`."


@v1.post(
    "/chat/completions",
    response_model=None,
    responses={200: {"model": ChatCompletionResponse, "description": _STREAM}},
)
async def chat_completions(request: Request) -> JSONResponse | StreamingResponse:
    return await _serving(request).chat(await request_json(request), request)


@v1.post(
    "/completions",
    response_model=None,
    responses={200: {"model": CompletionResponse, "description": _STREAM}},
)
async def completions(request: Request) -> JSONResponse | StreamingResponse:
    return await _serving(request).completion(await request_json(request), request)


@v1.post(
    "/responses",
    response_model=None,
    responses={
        200: {
            "model": ResponseObject,
            "description": "With stream=true, server-sent Responses events, ending with "
            "`response.completed` (or `response.incomplete`).",
        }
    },
)
async def responses(request: Request) -> JSONResponse | StreamingResponse:
    """OpenAI's Responses API, stateless, over the chat pipeline (strategies included)."""
    return await _serving(request).responses(await request_json(request), request)


@v1.get("/models")
async def models(request: Request) -> dict[str, Any]:
    engine = _serving(request).engine
    card = {
        "id": engine.model_name,
        "object": "model",
        "created": request.app.state.started,
        "owned_by": "ponder",
        "max_model_len": engine.max_model_len,
    }
    return {"object": "list", "data": [card]}


@v1.get("/strategies")
async def strategies(request: Request) -> dict[str, Any]:
    """What a request may ask for: every strategy with its parameters, every loaded verifier."""
    listed = []
    for name in STRATEGIES:
        cls = strategy_class(name)
        listed.append(
            {
                "name": name,
                "description": cls.description,
                "parameters": cls.Params.model_json_schema(),
            }
        )
    verifiers = [
        {
            "name": v.name,
            "kind": v.kind,
            "family": v.family,
            "model": v.model,
            "description": v.description,
        }
        for v in _serving(request).verifiers.values()
    ]
    return {"object": "list", "data": listed, "verifiers": verifiers}


@router.get("/health")
async def health(request: Request) -> JSONResponse:
    """Liveness: the engine is alive (restart the process if not)."""
    engine = _serving(request).engine
    try:
        await engine.check_alive()
    except EngineError:
        return JSONResponse({"status": "unhealthy"}, status_code=503)
    return JSONResponse({"status": "ok"})


@router.get("/ready")
async def ready(request: Request) -> JSONResponse:
    """Readiness: engine and verifiers up and the server not draining."""
    if request.app.state.draining:
        return JSONResponse({"status": "draining"}, status_code=503)
    try:
        await _serving(request).engine.check_health()
    except EngineError:
        return JSONResponse({"status": "engine unavailable"}, status_code=503)
    return JSONResponse({"status": "ready"})


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    if request.app.state.settings.metrics_require_key:
        await require_api_key(request)
    serving = _serving(request)
    serving.metrics.engine_requests_running.set(serving.engine.running_requests())
    return Response(serving.metrics.render(), media_type="text/plain; version=0.0.4")


router.include_router(v1)
