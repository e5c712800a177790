"""Strategy results turned into OpenAI responses and stream chunks, plus our `tts` block.

Token accounting lives here: `completion_tokens` is every policy token the request generated,
`reasoning_tokens` the part not returned, `cached_tokens` what the prefix cache served.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ponder.core.engine import GeneratedSequence, TokenLogprob
from ponder.strategies.base import RankedCandidate, StrategyContext, StrategyResult, Usage

__all__ = [
    "Endpoint",
    "Outcome",
    "chat_logprobs",
    "completion_logprobs",
    "openai_finish_reason",
    "reasoning_tokens",
    "response_body",
    "sse",
    "tts_block",
    "usage_block",
]

Endpoint = Literal["chat", "completion"]

_EMPTY = GeneratedSequence(text="", token_ids=(), finish_reason="length")


def sse(payload: dict[str, Any] | str) -> str:
    data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return f"data: {data}\n\n"


def openai_finish_reason(reason: str | None) -> str | None:
    # An aborted (deadline) sequence was cut short: OpenAI calls that "length".
    return "length" if reason == "abort" else reason


def _token_bytes(token: str) -> list[int]:
    return list(token.encode("utf-8"))


def chat_logprobs(tokens: Sequence[TokenLogprob], top: int) -> dict[str, Any]:
    return {
        "content": [
            {
                "token": t.token,
                "logprob": t.logprob,
                "bytes": _token_bytes(t.token),
                "top_logprobs": [
                    {"token": text, "logprob": lp, "bytes": _token_bytes(text)}
                    for _, text, lp in t.top[:top]
                ],
            }
            for t in tokens
        ],
        "refusal": None,
    }


def completion_logprobs(tokens: Sequence[TokenLogprob], top: int, offset: int = 0) -> dict:
    offsets, position = [], offset
    for t in tokens:
        offsets.append(position)
        position += len(t.token)
    return {
        "tokens": [t.token for t in tokens],
        "token_logprobs": [t.logprob for t in tokens],
        "top_logprobs": [{text: lp for _, text, lp in t.top[:top]} for t in tokens],
        "text_offset": offsets,
    }


@dataclass
class Outcome:
    """What one prompt of a request produced: its context (usage, budget) and its result."""

    ctx: StrategyContext
    result: StrategyResult

    def chosen(self, choices: int) -> list[RankedCandidate]:
        picked = [self.result.candidates[i] for i in self.result.ranking[:choices]]
        return picked + [RankedCandidate(_EMPTY)] * (choices - len(picked))


def reasoning_tokens(outcomes: Sequence[Outcome], choices: int, completion: int) -> int:
    """Of `completion` generated tokens, those not returned in the `choices` chosen answers."""
    returned = sum(c.sequence.num_tokens for o in outcomes for c in o.chosen(choices))
    return max(0, completion - returned)


def usage_block(outcomes: Sequence[Outcome], choices: int) -> dict[str, Any]:
    usage = Usage.total(o.ctx.usage for o in outcomes)
    completion = usage.completion_tokens
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": usage.prompt_tokens + completion,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
        "completion_tokens_details": {
            "reasoning_tokens": reasoning_tokens(outcomes, choices, completion)
        },
    }


def _trace(result: StrategyResult) -> list[dict[str, Any]]:
    return [
        {
            "index": i,
            "text": c.sequence.text,
            "tokens": c.sequence.num_tokens,
            "finish_reason": openai_finish_reason(c.sequence.finish_reason),
            "score": c.score,
            "answer": c.answer,
            **({"step_scores": list(c.step_scores)} if c.step_scores is not None else {}),
        }
        for i, c in enumerate(result.candidates)
    ]


def tts_block(strategy: str, outcomes: Sequence[Outcome], *, trace: bool) -> dict[str, Any]:
    """Our extension of the response: what the strategy explored and what it cost."""

    def one(o: Outcome) -> dict[str, Any]:
        block: dict[str, Any] = {
            "chosen_index": o.result.ranking[0] if o.result.ranking else None,
            "scores": [c.score for c in o.result.candidates],
            **o.result.details,
        }
        if trace:
            block["trace"] = _trace(o.result)
        return block

    exhausted = next((o.ctx.budget.exhausted for o in outcomes if o.ctx.budget.exhausted), None)
    usage = Usage.total(o.ctx.usage for o in outcomes)
    summary: dict[str, Any] = {
        "strategy": strategy,
        "candidates": sum(len(o.result.candidates) for o in outcomes),
        "generated_tokens": usage.completion_tokens,
        "cached_prompt_tokens": usage.cached_tokens,
        "engine_calls": usage.engine_calls,
        "verifier_calls": usage.verifier_calls,
        "verifier_tokens": usage.verifier_tokens,
        "verifier_cache_hits": usage.verifier_cache_hits,
        "budget_exhausted": exhausted,
    }
    if len(outcomes) == 1:
        summary.update(one(outcomes[0]))
    else:
        summary["per_prompt"] = [one(o) for o in outcomes]
    return summary


def response_body(
    endpoint: Endpoint,
    *,
    response_id: str,
    created: int,
    model: str,
    outcomes: Sequence[Outcome],
    choices: int,
    top_logprobs: int | None,
    tts: dict[str, Any],
) -> dict[str, Any]:
    rendered = []
    for p, outcome in enumerate(outcomes):
        for j, candidate in enumerate(outcome.chosen(choices)):
            s = candidate.sequence
            choice: dict[str, Any] = {
                "index": p * choices + j,
                "finish_reason": openai_finish_reason(s.finish_reason),
                "logprobs": None,
            }
            wants_logprobs = top_logprobs is not None and s.logprobs is not None
            if endpoint == "chat":
                choice["message"] = {"role": "assistant", "content": s.text, "refusal": None}
                if wants_logprobs:
                    choice["logprobs"] = chat_logprobs(s.logprobs or (), top_logprobs or 0)
            else:
                choice["text"] = s.text
                if wants_logprobs:
                    choice["logprobs"] = completion_logprobs(s.logprobs or (), top_logprobs or 0)
            rendered.append(choice)
    return {
        "id": response_id,
        "object": "chat.completion" if endpoint == "chat" else "text_completion",
        "created": created,
        "model": model,
        "choices": rendered,
        "usage": usage_block(outcomes, choices),
        "tts": tts,
    }
