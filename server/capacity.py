"""What a request costs the engine, and how much the engine holds: admission's two inputs.

A request's cost is the sequences it puts in flight at once (a best-of-N or self-consistency
request samples its N candidates in one batch, plain decoding its `n` choices) times its prompts,
and per sequence the KV-cache tokens it may use (its prompt plus its most new tokens). Searches
that keep fewer sequences in flight than they explore (MCTS, self-refine) are counted by the
candidates they explore: a worst case, as planning's token cap is.

The limits default to twice what the engine runs at once (vLLM's `max_num_seqs`, and its KV cache
in tokens): the engine then always holds the next batch in its own scheduler queue while Ponder
finishes the requests of the last one (without it, the engine runs a step or two short each time
a batch ends), and the token reservations are worst cases that most sequences never reach.
"""

from __future__ import annotations

import logging

from ponder.core.engine import Engine

from .admission import AdmissionLimits, Cost
from .planning import PreparedRequest
from .settings import Settings

__all__ = ["ENGINE_DEPTH", "FALLBACK_MAX_NUM_SEQS", "admission_limits", "request_cost"]

logger = logging.getLogger(__name__)

# Batches of the engine's own size that admission lets into it: one running, one queued.
ENGINE_DEPTH = 2
# vLLM's own default where an engine does not say (a remote `vllm serve`).
FALLBACK_MAX_NUM_SEQS = 256


def request_cost(prepared: PreparedRequest) -> Cost:
    """Sequences and KV-cache tokens the request puts in flight at most."""
    width = max(prepared.strategy.candidates(), prepared.choices)
    tokens = 0
    for context in prepared.contexts:
        tokens += width * (len(context.prompt_token_ids) + context.options.max_tokens)
    return Cost(sequences=width * len(prepared.contexts), tokens=tokens)


def admission_limits(settings: Settings, engine: Engine) -> AdmissionLimits:
    """The settings' limits, with the engine's capacity (times ENGINE_DEPTH) where unset."""
    sequences = settings.max_running_sequences
    if sequences is None:
        engine_seqs = engine.max_num_seqs
        if engine_seqs is None:
            logger.info(
                "the engine does not report its max_num_seqs; admitting up to %d sequences "
                "(set --max-running-sequences)",
                ENGINE_DEPTH * FALLBACK_MAX_NUM_SEQS,
            )
            engine_seqs = FALLBACK_MAX_NUM_SEQS
        sequences = ENGINE_DEPTH * engine_seqs
    tokens = settings.max_running_tokens
    if tokens is None and engine.kv_cache_tokens is not None:
        tokens = ENGINE_DEPTH * engine.kv_cache_tokens
    limits = AdmissionLimits(
        max_sequences=sequences,
        max_tokens=tokens,
        max_requests=settings.max_concurrent_requests,
        max_waiting=settings.max_queued_requests,
    )
    logger.info(
        "admission: up to %d sequences, %s KV-cache tokens and %s requests at once; %d may wait",
        limits.max_sequences,
        limits.max_tokens if limits.max_tokens is not None else "any",
        limits.max_requests if limits.max_requests is not None else "any",
        limits.max_waiting,
    )
    return limits
