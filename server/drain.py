"""Draining: on SIGTERM, stop taking work, let the admitted requests finish, then exit.

Kubernetes sends SIGTERM and removes the pod from its Service once readiness fails, which takes a
few seconds; uvicorn on its own closes the listening socket at once, so `/ready` is never seen
failing and new connections are refused outright. Draining reverses that: `/ready` turns 503 at
once, new requests get a 503 with Retry-After (`server_draining`), the requests already admitted
(running or queued) finish within `drain_grace_s`, and only then does uvicorn close the socket
and the lifespan stop the engine. A second SIGTERM, or SIGINT, exits as uvicorn does.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from types import FrameType

import uvicorn
from fastapi import FastAPI

__all__ = ["DrainingServer", "drain"]

logger = logging.getLogger(__name__)

# Once the drain is over, connections still open are cut after this many seconds.
_CLOSE_TIMEOUT_S = 2


async def drain(app: FastAPI, grace_s: float) -> bool:
    """Refuse new work and wait for the admitted requests; False if the grace period ran out."""
    app.state.draining = True
    serving = getattr(app.state, "serving", None)
    if serving is None:  # still starting: nothing admitted yet
        return True
    serving.admission.close()
    serving.metrics.draining.set(1)
    logger.info(
        "draining: %d request(s) in flight, %.0f s to finish",
        serving.admission.in_flight,
        grace_s,
    )
    finished: bool = await serving.admission.idle(grace_s)
    if finished:
        logger.info("drained: every admitted request finished")
    else:
        logger.warning(
            "drain grace period over with %d request(s) in flight; they will be cut",
            serving.admission.in_flight,
        )
    return finished


class DrainingServer(uvicorn.Server):
    """uvicorn's server with SIGTERM turned into a drain before the usual shutdown."""

    def __init__(
        self, app: FastAPI, grace_s: float, *, host: str, port: int, log_level: str
    ) -> None:
        super().__init__(
            uvicorn.Config(
                app,
                host=host,
                port=port,
                log_level=log_level,
                timeout_graceful_shutdown=_CLOSE_TIMEOUT_S,
            )
        )
        self._app = app
        self._grace_s = grace_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._draining: asyncio.Task[None] | None = None

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        first_term = sig == signal.SIGTERM and self._loop is not None and not self.should_exit
        if not first_term or self._drain_started():
            super().handle_exit(sig, frame)
            return
        assert self._loop is not None
        # A signal handler may interrupt the loop anywhere: hand the work to it thread-safely.
        self._loop.call_soon_threadsafe(self._start_drain)

    def _drain_started(self) -> bool:
        return self._draining is not None

    def _start_drain(self) -> None:
        if self._draining is None:
            self._draining = asyncio.ensure_future(self._drain_then_exit())

    async def _drain_then_exit(self) -> None:
        try:
            await drain(self._app, self._grace_s)
        finally:
            self.should_exit = True
