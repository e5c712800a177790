"""A Ponder server on an engine in this process, for `ponder eval --serve` and the benchmarks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from ponder.core.engine import Engine
from ponder.server.settings import Settings

__all__ = ["served"]


@asynccontextmanager
async def served(settings: Settings) -> AsyncIterator[tuple[Engine, str]]:
    """Start the engine, serve the API on it, yield (engine, base URL), then stop both."""
    import uvicorn

    from ponder.server.app import create_app

    # The app's own lifespan starts the engine, so the checks `ponder serve` makes first (the
    # policy table, GPU shares) come before a minute of engine start-up here too.
    app = create_app(settings)
    config = uvicorn.Config(app, host="127.0.0.1", port=settings.port, log_level="warning")
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():
            serving.result()  # start-up failed: raise its error
            raise RuntimeError("the in-process server stopped during start-up")
        await asyncio.sleep(0.1)
    # Port 0 asks the system for a free one; the socket says which it gave.
    port = server.servers[0].sockets[0].getsockname()[1] if settings.port == 0 else settings.port
    try:
        yield app.state.serving.engine, f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serving
