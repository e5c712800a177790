"""Prometheus series for what test-time compute costs, next to vLLM's own `vllm:*` series.

Ponder's series live in their own registry (so several apps can exist in one process, as in tests)
and `/metrics` renders it together with the default registry, where vLLM registers.
"""

from __future__ import annotations

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    generate_latest,
)

__all__ = ["PonderMetrics"]

_DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80, 160, 320, 640)
_TOKEN_BUCKETS = (16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576)


class PonderMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry or CollectorRegistry()
        s = ["strategy"]
        self.requests = Counter(
            "ponder_requests",
            "Requests finished, by strategy and status.",
            [*s, "status"],
            registry=r,
        )
        self.request_duration = Histogram(
            "ponder_request_duration_seconds",
            "Wall time of a request from admission to its last byte.",
            s,
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.policy_tokens = Counter(
            "ponder_policy_tokens", "Tokens the policy model generated.", s, registry=r
        )
        self.prompt_tokens = Counter(
            "ponder_prompt_tokens", "Prompt tokens submitted to the policy engine.", s, registry=r
        )
        self.cached_prompt_tokens = Counter(
            "ponder_prompt_cached_tokens",
            "Prompt tokens served from the engine's prefix cache.",
            s,
            registry=r,
        )
        self.candidates = Counter("ponder_candidates", "Candidate answers explored.", s, registry=r)
        self.engine_calls = Counter(
            "ponder_engine_calls",
            "Engine calls made by requests, by strategy (a batched call counts once).",
            s,
            registry=r,
        )
        self.compute_tokens = Histogram(
            "ponder_compute_tokens_per_request",
            "Policy tokens generated plus verifier tokens, per request.",
            s,
            buckets=_TOKEN_BUCKETS,
            registry=r,
        )
        self.budget_exhausted = Counter(
            "ponder_budget_exhausted",
            "Requests whose budget ran out, by the budget that did.",
            [*s, "reason"],
            registry=r,
        )
        self.difficulty_bins = Counter(
            "ponder_difficulty_bin",
            "compute_optimal requests by estimated difficulty bin and the strategy it chose.",
            ["bin", "chosen_strategy"],
            registry=r,
        )
        v = ["verifier"]
        self.verifier_calls = Counter(
            "ponder_verifier_calls", "Candidates or steps scored by verifiers.", v, registry=r
        )
        self.verifier_tokens = Counter(
            "ponder_verifier_tokens", "Tokens verifiers processed.", v, registry=r
        )
        self.verifier_cache_hits = Counter(
            "ponder_verifier_cache_hits",
            "Step scores served from the step-score cache.",
            v,
            registry=r,
        )
        self.verifier_duration = Histogram(
            "ponder_verifier_duration_seconds",
            "Wall time of one batched verifier call.",
            v,
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.requests_running = Gauge(
            "ponder_requests_running", "Requests being served now.", registry=r
        )
        self.requests_waiting = Gauge(
            "ponder_requests_waiting", "Requests admitted and waiting for room to run.", registry=r
        )
        # Admission in the engine's terms (server/admission.py): a best-of-N request is N
        # sequences, so an autoscaler or endpoint picker reading "waiting" sees its real size.
        self.sequences_running = Gauge(
            "ponder_sequences_running",
            "Sequences the running requests may have in flight in the engine at once.",
            registry=r,
        )
        self.sequences_waiting = Gauge(
            "ponder_sequences_waiting",
            "Sequences the requests waiting for admission will put in flight.",
            registry=r,
        )
        self.tokens_running = Gauge(
            "ponder_reserved_tokens",
            "KV-cache tokens the running requests may use at most (prompt plus most new tokens, "
            "per sequence).",
            registry=r,
        )
        self.admission_limit = Gauge(
            "ponder_admission_limit",
            "What admitted requests may hold at once, by resource (sequences, tokens).",
            ["resource"],
            registry=r,
        )
        self.draining = Gauge(
            "ponder_draining",
            "1 from the shutdown signal until exit: /ready is 503 and new requests are refused.",
            registry=r,
        )
        self.engine_requests_running = Gauge(
            "ponder_engine_requests_running",
            "Engine requests started by Ponder and not finished or aborted.",
            registry=r,
        )
        self.build = Info("ponder_build", "Ponder and engine versions.", registry=r)
        # The dashboard's reasoning share and the admission alert read these two.
        self.reasoning_tokens = Counter(
            "ponder_reasoning_tokens",
            "Policy tokens generated but not returned (the strategy's thinking).",
            s,
            registry=r,
        )

    def observe_verifier(
        self, name: str, candidates: int, tokens: int, seconds: float, cache_hits: int = 0
    ) -> None:
        self.verifier_calls.labels(name).inc(candidates)
        self.verifier_cache_hits.labels(name).inc(cache_hits)
        self.verifier_tokens.labels(name).inc(tokens)
        self.verifier_duration.labels(name).observe(seconds)

    def render(self) -> bytes:
        """Ponder's series followed by vLLM's (and anything else in the default registry)."""
        return generate_latest(self.registry) + generate_latest(REGISTRY)
