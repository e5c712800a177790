"""Which remote vLLM server serves an engine call: affinity, least load, and health.

Every engine call of one Ponder request goes to the server its first call went to, so that a
search's levels and a verifier's re-reads hit that server's prefix cache. A new request whose
prompt starts with the same long prefix as an earlier one (a shared system prompt, the same
question) goes where that prefix went, unless that server is busier than the least-loaded one by
more than `max_imbalance` calls. Anything else goes to the least-loaded healthy server.

A server that fails a call or its health check is taken out at once; it is probed again every
`probe_interval_s` and put back when `/health` answers 200. The pool knows nothing of HTTP
bodies: `remote_engine.py` sends the calls and reports each outcome here.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["NoHealthyServer", "RemoteServer", "ServerPool", "affinity_key"]

# Engine call ids are `{request_id}-{kind}{n}` (StrategyContext.call_id): the request id is what
# all calls of one request share.
_CALL_SUFFIX = re.compile(r"-[a-z]+\d+$")
_DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80, 160)


def affinity_key(call_id: str) -> str:
    """The Ponder request an engine call belongs to."""
    return _CALL_SUFFIX.sub("", call_id)


class NoHealthyServer(RuntimeError):
    """Every server of the pool is out."""


@dataclass
class RemoteServer:
    index: int
    url: str
    healthy: bool = True
    in_flight: int = 0
    # monotonic() after which an out server is probed again.
    probe_after: float = 0.0


class _LRU:
    """A bounded map from keys to server indexes, oldest forgotten first."""

    def __init__(self, size: int) -> None:
        self._items: OrderedDict[str, int] = OrderedDict()
        self._size = size

    def get(self, key: str) -> int | None:
        found = self._items.get(key)
        if found is not None:
            self._items.move_to_end(key)
        return found

    def put(self, key: str, index: int) -> None:
        self._items[key] = index
        self._items.move_to_end(key)
        while len(self._items) > self._size:
            self._items.popitem(last=False)


class ServerPool:
    def __init__(
        self,
        urls: Sequence[str],
        *,
        prefix_tokens: int = 256,
        max_imbalance: int = 4,
        probe_interval_s: float = 2.0,
        remembered: int = 4096,
    ) -> None:
        if not urls:
            raise ValueError("a remote engine needs at least one server URL")
        self.servers = [RemoteServer(i, url.rstrip("/")) for i, url in enumerate(urls)]
        self.prefix_tokens = prefix_tokens
        self.max_imbalance = max_imbalance
        self.probe_interval_s = probe_interval_s
        self._by_request = _LRU(remembered)
        self._by_prefix = _LRU(remembered)
        self.registry = CollectorRegistry()
        label = ["server"]
        # Labelled by the server's index in --engine-url order: URLs may carry secrets.
        self.calls = Counter(
            "ponder_engine_server_calls",
            "Engine calls sent to each remote vLLM server.",
            label,
            registry=self.registry,
        )
        self.errors = Counter(
            "ponder_engine_server_errors",
            "Engine calls that failed on each remote server (connection, 5xx, timeout).",
            label,
            registry=self.registry,
        )
        self.latency = Histogram(
            "ponder_engine_server_call_duration_seconds",
            "Wall time of one engine call on each remote server.",
            label,
            buckets=_DURATION_BUCKETS,
            registry=self.registry,
        )
        self.up = Gauge(
            "ponder_engine_server_up",
            "1 while a remote server is in the pool, 0 while it is out.",
            label,
            registry=self.registry,
        )
        self.in_flight_gauge = Gauge(
            "ponder_engine_server_in_flight",
            "Engine calls in flight on each remote server.",
            label,
            registry=self.registry,
        )
        for server in self.servers:
            self.up.labels(str(server.index)).set(1)

    # -- choosing ------------------------------------------------------------------------------

    def healthy(self) -> list[RemoteServer]:
        return [s for s in self.servers if s.healthy]

    def due_for_probe(self) -> list[RemoteServer]:
        now = time.monotonic()
        return [s for s in self.servers if not s.healthy and now >= s.probe_after]

    def _prefix_key(self, prompt: Sequence[int]) -> str | None:
        if len(prompt) < self.prefix_tokens:
            return None
        head = ",".join(map(str, prompt[: self.prefix_tokens]))
        return hashlib.blake2b(head.encode(), digest_size=16).hexdigest()

    def pick(self, call_id: str, prompt: Sequence[int]) -> RemoteServer:
        """The server for an engine call (raises NoHealthyServer when every server is out)."""
        healthy = self.healthy()
        if not healthy:
            raise NoHealthyServer("no remote vLLM server is healthy")
        request = affinity_key(call_id)
        pinned = self._by_request.get(request)
        if pinned is not None and self.servers[pinned].healthy:
            return self.servers[pinned]
        least = min(healthy, key=lambda s: s.in_flight)
        chosen = least
        prefix = self._prefix_key(prompt)
        if prefix is not None:
            shared = self._by_prefix.get(prefix)
            if (
                shared is not None
                and self.servers[shared].healthy
                and self.servers[shared].in_flight <= least.in_flight + self.max_imbalance
            ):
                chosen = self.servers[shared]
            self._by_prefix.put(prefix, chosen.index)
        self._by_request.put(request, chosen.index)
        return chosen

    # -- outcomes ------------------------------------------------------------------------------

    def started(self, server: RemoteServer) -> None:
        server.in_flight += 1
        self.calls.labels(str(server.index)).inc()
        self.in_flight_gauge.labels(str(server.index)).set(server.in_flight)

    def finished(self, server: RemoteServer, seconds: float) -> None:
        server.in_flight -= 1
        self.latency.labels(str(server.index)).observe(seconds)
        self.in_flight_gauge.labels(str(server.index)).set(server.in_flight)

    def failed(self, server: RemoteServer) -> None:
        """A call failed for the server's sake: take it out until a probe says it is back."""
        self.errors.labels(str(server.index)).inc()
        self.mark(server, healthy=False)

    def mark(self, server: RemoteServer, *, healthy: bool) -> None:
        server.healthy = healthy
        if not healthy:
            server.probe_after = time.monotonic() + self.probe_interval_s
        self.up.labels(str(server.index)).set(1 if healthy else 0)
