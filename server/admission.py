"""Admission in the engine's terms: requests are admitted by the sequences and KV-cache tokens
they will put in flight, wait in one FIFO queue, and beyond that queue get 429.

The engine's capacity is sequences (vLLM's `max_num_seqs`) and KV-cache tokens, not requests: a
best_of_16 request puts 16 sequences in flight, a plain request one. So each request carries a
`Cost` (sequences, and per sequence its prompt plus its most new tokens), and runs once what is
already running leaves room for it. A request wider than the whole capacity still runs, alone, so
that what planning accepted is never stuck. Waiting requests start strictly in arrival order: a
narrow request never overtakes a wide one that waits for room, so wide requests cannot starve.

A full server says so at once (429 with Retry-After) instead of letting latency grow without
bound, and the gauges (requests, sequences, tokens; running and waiting) show an autoscaler or an
endpoint picker how much work waits, with a best-of-N request counted as N sequences. The
decision is taken before a response starts (a streamed request refused mid-stream would have had a
200 already, and clients and load balancers retry on the status, not on an event inside it).
While the server drains, every new request is refused with a 503 and the drain waits for the
admitted ones to finish.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from .errors import APIError
from .metrics import PonderMetrics

__all__ = ["Admission", "AdmissionLimits", "AdmittedStream", "Cost", "Ticket"]

RETRY_AFTER_S = "1"


@dataclass(frozen=True)
class Cost:
    """What one request puts in flight in the engine at most."""

    sequences: int = 1
    # KV-cache tokens: per sequence, its prompt plus the most tokens it may generate.
    tokens: int = 0

    def __add__(self, other: Cost) -> Cost:
        return Cost(self.sequences + other.sequences, self.tokens + other.tokens)

    def __sub__(self, other: Cost) -> Cost:
        return Cost(self.sequences - other.sequences, self.tokens - other.tokens)


@dataclass(frozen=True)
class AdmissionLimits:
    """How much may run at once and how many requests may wait (None: no bound of that kind)."""

    max_sequences: int
    max_tokens: int | None = None
    max_requests: int | None = None
    max_waiting: int = 64

    def clamp(self, cost: Cost) -> Cost:
        """A cost no larger than the limits: a request wider than the whole capacity runs alone."""
        tokens = cost.tokens if self.max_tokens is None else min(cost.tokens, self.max_tokens)
        return Cost(min(cost.sequences, self.max_sequences), tokens)


class Ticket:
    """One admitted request: it waits its turn, runs, and is released exactly once."""

    def __init__(self, admission: Admission, cost: Cost) -> None:
        self._admission = admission
        self.cost = cost
        self.state = "waiting"
        self._started: asyncio.Future[None] | None = None

    def _start(self) -> None:
        self.state = "running"
        if self._started is not None and not self._started.done():
            self._started.set_result(None)

    async def acquire(self) -> None:
        """Wait until the request may run (it stays counted as waiting until then)."""
        if self.state != "waiting":
            return
        self._started = asyncio.get_running_loop().create_future()
        await self._started

    def release(self) -> None:
        """Give the room (or the place in the queue) back; later calls do nothing."""
        if self.state != "released":
            self._admission._release(self)
            self.state = "released"


class Admission:
    def __init__(self, limits: AdmissionLimits, metrics: PonderMetrics) -> None:
        self.limits = limits
        self._queue: deque[Ticket] = deque()
        self._running = 0
        self._in_use = Cost(0, 0)
        self._queued = Cost(0, 0)
        self._closed = False
        self._idle = asyncio.Event()
        self._idle.set()
        self._metrics = metrics
        metrics.admission_limit.labels("sequences").set(limits.max_sequences)
        if limits.max_tokens is not None:
            metrics.admission_limit.labels("tokens").set(limits.max_tokens)
        self._show()

    @property
    def running(self) -> int:
        return self._running

    @property
    def waiting(self) -> int:
        return len(self._queue)

    @property
    def in_use(self) -> Cost:
        """What the running requests hold (clamped costs)."""
        return self._in_use

    @property
    def in_flight(self) -> int:
        """Admitted requests not yet finished: running or waiting for room."""
        return self._running + len(self._queue)

    def _fits(self, cost: Cost) -> bool:
        limits, used = self.limits, self._in_use
        if limits.max_requests is not None and self._running >= limits.max_requests:
            return False
        if used.sequences + cost.sequences > limits.max_sequences:
            return False
        return limits.max_tokens is None or used.tokens + cost.tokens <= limits.max_tokens

    def _dispatch(self) -> None:
        """Start waiting requests in arrival order while the first of them fits."""
        while self._queue and self._fits(self._queue[0].cost):
            ticket = self._queue.popleft()
            self._queued -= ticket.cost
            self._running += 1
            self._in_use += ticket.cost
            ticket._start()

    def _show(self) -> None:
        m = self._metrics
        m.requests_waiting.set(len(self._queue))
        m.requests_running.set(self._running)
        m.sequences_waiting.set(self._queued.sequences)
        m.sequences_running.set(self._in_use.sequences)
        m.tokens_running.set(self._in_use.tokens)
        if self.in_flight == 0:
            self._idle.set()
        else:
            self._idle.clear()

    def _release(self, ticket: Ticket) -> None:
        if ticket.state == "running":
            self._running -= 1
            self._in_use -= ticket.cost
        elif ticket.state == "waiting":
            self._queue.remove(ticket)
            self._queued -= ticket.cost
        # A freed room, or a departed head of the queue, may let the next ones start.
        self._dispatch()
        self._show()

    def check(self, cost: Cost = Cost()) -> None:
        """Raise 503 while draining, 429 if a request of this cost could neither run nor wait."""
        if self._closed:
            raise APIError(
                503,
                "the server is shutting down; retry on another replica",
                code="server_draining",
                headers={"Retry-After": RETRY_AFTER_S},
            )
        runs_now = not self._queue and self._fits(self.limits.clamp(cost))
        if not runs_now and len(self._queue) >= self.limits.max_waiting:
            raise APIError(
                429,
                "the server is at capacity; retry shortly",
                code="server_busy",
                headers={"Retry-After": RETRY_AFTER_S},
            )

    def enter(self, cost: Cost = Cost()) -> Ticket:
        """Admit a request now (it runs once `Ticket.acquire` returns) or refuse it."""
        self.check(cost)
        ticket = Ticket(self, self.limits.clamp(cost))
        self._queue.append(ticket)
        self._queued += ticket.cost
        self._dispatch()
        self._show()
        return ticket

    @asynccontextmanager
    async def slot(self, cost: Cost = Cost()) -> AsyncIterator[None]:
        ticket = self.enter(cost)
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
    """An event stream that holds its request's room until the last byte is sent (or the client
    has gone), whether or not the stream was ever started."""

    def __init__(self, content: AsyncIterator[str], ticket: Ticket, **kwargs: Any) -> None:
        super().__init__(content, media_type="text/event-stream", **kwargs)
        self._ticket = ticket

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._ticket.release()
