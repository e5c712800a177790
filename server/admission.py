"""Admission: a bounded number of requests run at once, a bounded number wait, the rest get 429.

A full server says so at once (with Retry-After) instead of letting latency grow without bound;
the gauges show operators how close to that they run. The decision is taken before a response
starts (a streamed request refused mid-stream would have had a 200 already, and clients and load
balancers retry on the status, not on an event inside it). While the server drains, every new
request is refused with a 503 and the drain waits for the admitted ones to finish.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from .errors import APIError
from .metrics import PonderMetrics

__all__ = ["Admission", "AdmittedStream", "Ticket"]

RETRY_AFTER_S = "1"


class Ticket:
    """One admitted request: it waits for a slot, runs, and is released exactly once."""

    def __init__(self, admission: Admission) -> None:
        self._admission = admission
        self._state = "waiting"

    async def acquire(self) -> None:
        """Wait for a slot (the request stays counted as waiting until it has one)."""
        await self._admission._slots.acquire()
        if self._state != "waiting":  # released while it waited (cancelled)
            self._admission._slots.release()
            return
        self._state = "running"
        self._admission._move(waiting=-1, running=1)

    def release(self) -> None:
        """Give the slot (or the place in the queue) back; later calls do nothing."""
        if self._state == "running":
            self._admission._slots.release()
            self._admission._move(running=-1)
        elif self._state == "waiting":
            self._admission._move(waiting=-1)
        self._state = "released"


class Admission:
    def __init__(self, max_running: int, max_waiting: int, metrics: PonderMetrics) -> None:
        self._slots = asyncio.Semaphore(max_running)
        self._max_running = max_running
        self._max_waiting = max_waiting
        self._running = 0
        self._waiting = 0
        self._closed = False
        self._idle = asyncio.Event()
        self._idle.set()
        self._metrics = metrics

    @property
    def running(self) -> int:
        return self._running

    @property
    def in_flight(self) -> int:
        """Admitted requests not yet finished: running or waiting for a slot."""
        return self._running + self._waiting

    def _move(self, *, waiting: int = 0, running: int = 0) -> None:
        self._waiting += waiting
        self._running += running
        self._metrics.requests_waiting.set(self._waiting)
        self._metrics.requests_running.set(self._running)
        if self.in_flight == 0:
            self._idle.set()
        else:
            self._idle.clear()

    def check(self) -> None:
        """Raise 503 while draining, 429 if a new request could neither run nor wait now."""
        if self._closed:
            raise APIError(
                503,
                "the server is shutting down; retry on another replica",
                code="server_draining",
                headers={"Retry-After": RETRY_AFTER_S},
            )
        if self._running + self._waiting >= self._max_running + self._max_waiting:
            raise APIError(
                429,
                "the server is at capacity; retry shortly",
                code="server_busy",
                headers={"Retry-After": RETRY_AFTER_S},
            )

    def enter(self) -> Ticket:
        """Admit a request now (it waits for a slot with `Ticket.acquire`) or refuse it."""
        self.check()
        self._move(waiting=1)
        return Ticket(self)

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        ticket = self.enter()
        try:
            await ticket.acquire()
            yield
        finally:
            ticket.release()

    def close(self) -> None:
        """Refuse every new request from now on (the server is draining)."""
        self._closed = True

    async def idle(self, timeout: float) -> bool:
        """Wait until no admitted request is left; False if `timeout` seconds passed first."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        return True


class AdmittedStream(StreamingResponse):
    """An event stream that holds its request's slot until the last byte is sent (or the client
    has gone), whether or not the stream was ever started."""

    def __init__(self, content: AsyncIterator[str], ticket: Ticket, **kwargs: Any) -> None:
        super().__init__(content, media_type="text/event-stream", **kwargs)
        self._ticket = ticket

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._ticket.release()
