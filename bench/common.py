"""What the benchmark scripts share: Ponder's HTTP server on an engine in this process."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn

from ponder.server.app import create_app, start_engine
from ponder.server.engine import Engine
from ponder.server.settings import Settings


def addition_problems(count: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [
        f"What is {rng.randint(10, 99)} + {rng.randint(10, 99)}? Reply with only the final number."
        for _ in range(count)
    ]


@asynccontextmanager
async def served(settings: Settings) -> AsyncIterator[tuple[Engine, str]]:
    """Start the engine, serve the API on it, yield (engine, base URL), then stop both."""
    engine = start_engine(settings)
    app = create_app(settings, engine=engine)
    config = uvicorn.Config(app, host="127.0.0.1", port=settings.port, log_level="warning")
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.1)
    try:
        yield engine, f"http://127.0.0.1:{settings.port}"
    finally:
        server.should_exit = True
        await serving
        engine.shutdown()  # type: ignore[attr-defined]
