"""The API's own description: `/openapi.json`, `/docs` and `/redoc`, public or behind the key.

The routes read the raw body (so that decoding is bounded, see `decoding.py`), which leaves
FastAPI nothing to describe; the request models are added to the schema here, so the docs show
what a request may hold and property-based tests can generate bodies from the same schema.

By default the description is public, as the OpenAI API's is: it says nothing that the
strategy list at `/v1/strategies` does not. With `public_docs` off, all three ask for the API key.
"""

from __future__ import annotations

from typing import Any

from fastapi import Depends, FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel

from .progress import ProgressChunk
from .protocol import ChatCompletionRequest, CompletionRequest
from .responses_protocol import ResponsesRequest
from .routers import require_api_key
from .settings import Settings

__all__ = ["docs_urls", "install_docs"]

_OPENAPI, _DOCS, _REDOC = "/openapi.json", "/docs", "/redoc"
_BODIES: dict[str, type[BaseModel]] = {
    "/v1/chat/completions": ChatCompletionRequest,
    "/v1/completions": CompletionRequest,
    "/v1/responses": ResponsesRequest,
}
# Models no route returns whole but that the docs should show: a streamed search's progress.
_STREAMED: tuple[type[BaseModel], ...] = (ProgressChunk,)


def docs_urls(settings: Settings) -> dict[str, Any]:
    """FastAPI's own docs routes when public; none (ours are added instead) when keyed."""
    if settings.public_docs:
        return {"openapi_url": _OPENAPI, "docs_url": _DOCS, "redoc_url": _REDOC}
    return {"openapi_url": None, "docs_url": None, "redoc_url": None}


def _schema(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema is not None:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for path, model in _BODIES.items():
        body = model.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(body.pop("$defs", {}))
        components[model.__name__] = body
        operation = schema["paths"][path]["post"]
        operation["requestBody"] = {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}
            },
        }
    for model in _STREAMED:
        body = model.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(body.pop("$defs", {}))
        components[model.__name__] = body
    for path in _BODIES:
        # A streamed search's events: its progress chunks are documented; the answer chunks
        # are OpenAI's.
        content = schema["paths"][path]["post"]["responses"]["200"].setdefault("content", {})
        content["text/event-stream"] = {
            "schema": {"$ref": f"#/components/schemas/{ProgressChunk.__name__}"}
        }
    app.openapi_schema = schema
    return schema


def install_docs(app: FastAPI, settings: Settings) -> None:
    app.openapi = lambda: _schema(app)  # type: ignore[method-assign]
    if settings.public_docs:
        return
    keyed = [Depends(require_api_key)]

    @app.get(_OPENAPI, include_in_schema=False, dependencies=keyed)
    async def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get(_DOCS, include_in_schema=False, dependencies=keyed)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=_OPENAPI, title=f"{app.title} - docs")

    @app.get(_REDOC, include_in_schema=False, dependencies=keyed)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(openapi_url=_OPENAPI, title=f"{app.title} - ReDoc")
