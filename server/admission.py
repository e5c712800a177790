"""Admission: a bounded number of requests run at once, a bounded number wait, the rest get 429.

A full server says so at once (with Retry-After) instead of letting latency grow without bound;
the gauges show operators how close to that they run.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from .errors import APIError
from .metrics import PonderMetrics

__all__ = ["Admission"]


class Admission:
    def __init__(self, max_running: int, max_waiting: int, metrics: PonderMetrics) -> None:
        self._slots = asyncio.Semaphore(max_running)
        self._max_running = max_running
        self._max_waiting = max_waiting
        self._running = 0
        self._waiting = 0
        self._metrics = metrics

    @property
    def running(self) -> int:
        return self._running

    def check(self) -> None:
        """Raise 429 if a new request could neither run nor wait now."""
        if self._running >= self._max_running and self._waiting >= self._max_waiting:
            self._metrics.admission_rejections.inc()
            raise APIError(
                429,
                "the server is at capacity; retry shortly",
                code="server_busy",
                headers={"Retry-After": "1"},
            )

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        self.check()
        self._waiting += 1
        self._metrics.requests_waiting.set(self._waiting)
        try:
            await self._slots.acquire()
        finally:
            self._waiting -= 1
            self._metrics.requests_waiting.set(self._waiting)
        self._running += 1
        self._metrics.requests_running.set(self._running)
        try:
            yield
        finally:
            self._running -= 1
            self._metrics.requests_running.set(self._running)
            self._slots.release()
