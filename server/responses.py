"""Strategy results turned into OpenAI responses and stream chunks, plus our `tts` block.

The bodies are the response models of `protocol.py`. Token accounting lives here:
`completion_tokens` is every policy token the request generated, `reasoning_tokens` the part not
returned, `cached_tokens` what the prefix cache served.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel

from ponder.core.engine import GeneratedSequence, TokenLogprob
from ponder.core.reasoning import split_sequence
from ponder.strategies.base import RankedCandidate, StrategyResult
from ponder.strategies.context import StrategyContext
from ponder.strategies.usage import Usage

from .protocol import (
    ChatCompletionChoice,
    ChatCompletionMessageOut,
    ChatCompletionResponse,
    CompletionChoice,
    CompletionResponse,
    CompletionTokensDetails,
    PromptTokensDetails,
    TraceCandidate,
    TTSBlock,
    TTSPromptReport,
    UsageInfo,
)

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
    "wire",
]

Endpoint = Literal["chat", "completion", "responses"]

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
        """The returned candidates, best first, split into thinking and answer where the
        request has a reasoning format (step searches leave theirs whole until here)."""
        picked = [self.result.candidates[i] for i in self.result.ranking[:choices]]
        fmt = self.ctx.reasoning
        if fmt is not None:
            decode = self.ctx.engine.decode
            picked = [
                dataclasses.replace(c, sequence=split_sequence(c.sequence, fmt, decode))
                for c in picked
            ]
        return picked + [RankedCandidate(_EMPTY)] * (choices - len(picked))


def reasoning_tokens(outcomes: Sequence[Outcome], choices: int, completion: int) -> int:
    """Of `completion` generated tokens, those not returned as content in the `choices` chosen
    answers: their thinking, every other candidate, critiques and search steps."""
    returned = sum(c.sequence.returned_tokens for o in outcomes for c in o.chosen(choices))
    return max(0, completion - returned)


def usage_block(outcomes: Sequence[Outcome], choices: int) -> UsageInfo:
    usage = Usage.total(o.ctx.usage for o in outcomes)
    completion = usage.completion_tokens
    return UsageInfo(
        completion_tokens=completion,
        prompt_tokens=usage.prompt_tokens,
        total_tokens=usage.prompt_tokens + completion,
        completion_tokens_details=CompletionTokensDetails(
            reasoning_tokens=reasoning_tokens(outcomes, choices, completion)
        ),
        prompt_tokens_details=PromptTokensDetails(cached_tokens=usage.cached_tokens),
    )


def _trace(result: StrategyResult) -> list[TraceCandidate]:
    trace = []
    for i, c in enumerate(result.candidates):
        # Step scores are listed only for candidates a process verifier scored.
        steps = {} if c.step_scores is None else {"step_scores": list(c.step_scores)}
        trace.append(
            TraceCandidate(
                index=i,
                text=c.sequence.text,
                tokens=c.sequence.num_tokens,
                finish_reason=openai_finish_reason(c.sequence.finish_reason),
                score=c.score,
                answer=c.answer,
                **steps,
            )
        )
    return trace


def _prompt_report(outcome: Outcome, *, trace: bool) -> dict[str, Any]:
    """One prompt's choice, the strategy's findings, and (if asked) its trace."""
    result = outcome.result
    report: dict[str, Any] = {
        "chosen_index": result.ranking[0] if result.ranking else None,
        "scores": [c.score for c in result.candidates],
        **result.details,
    }
    if trace:
        report["trace"] = _trace(result)
    return report


def tts_block(strategy: str, outcomes: Sequence[Outcome], *, trace: bool) -> TTSBlock:
    """Our extension of the response: what the strategy explored and what it cost."""
    exhausted = next((o.ctx.budget.exhausted for o in outcomes if o.ctx.budget.exhausted), None)
    usage = Usage.total(o.ctx.usage for o in outcomes)
    if len(outcomes) == 1:
        prompts: dict[str, Any] = _prompt_report(outcomes[0], trace=trace)
    else:
        reports = [TTSPromptReport(**_prompt_report(o, trace=trace)) for o in outcomes]
        prompts = {"per_prompt": reports}
    return TTSBlock(
        strategy=strategy,
        candidates=sum(len(o.result.candidates) for o in outcomes),
        generated_tokens=usage.completion_tokens,
        cached_prompt_tokens=usage.cached_tokens,
        engine_calls=usage.engine_calls,
        verifier_calls=usage.verifier_calls,
        verifier_tokens=usage.verifier_tokens,
        verifier_cache_hits=usage.verifier_cache_hits,
        budget_exhausted=exhausted,
        **prompts,
    )


def wire(model: BaseModel) -> dict[str, Any]:
    """A response model as sent: the fields the server set (see `protocol.py`)."""
    return model.model_dump(exclude_unset=True)


def _logprobs(
    endpoint: Endpoint, sequence: GeneratedSequence, top_logprobs: int | None
) -> dict[str, Any] | None:
    if top_logprobs is None or sequence.logprobs is None:
        return None
    if endpoint == "chat":
        return chat_logprobs(sequence.logprobs, top_logprobs)
    return completion_logprobs(sequence.logprobs, top_logprobs)


def _message(sequence: GeneratedSequence, include_reasoning: bool) -> ChatCompletionMessageOut:
    message = ChatCompletionMessageOut(content=sequence.text, refusal=None, role="assistant")
    if include_reasoning and sequence.reasoning is not None:
        message.reasoning = sequence.reasoning  # set only here, so absent otherwise
    return message


def response_body(
    endpoint: Endpoint,
    *,
    response_id: str,
    created: int,
    model: str,
    outcomes: Sequence[Outcome],
    choices: int,
    top_logprobs: int | None,
    tts: TTSBlock,
    include_reasoning: bool = True,
) -> dict[str, Any]:
    chosen = [
        (p * choices + j, candidate.sequence)
        for p, outcome in enumerate(outcomes)
        for j, candidate in enumerate(outcome.chosen(choices))
    ]
    # OpenAI's order puts `choices` between `id` and `created`; the models keep it.
    envelope: dict[str, Any] = {
        "id": response_id,
        "created": created,
        "model": model,
        "usage": usage_block(outcomes, choices),
        "tts": tts,
    }
    body: ChatCompletionResponse | CompletionResponse
    if endpoint == "chat":
        chat_choices = [
            ChatCompletionChoice(
                finish_reason=openai_finish_reason(s.finish_reason),
                index=index,
                logprobs=_logprobs(endpoint, s, top_logprobs),
                message=_message(s, include_reasoning),
            )
            for index, s in chosen
        ]
        body = ChatCompletionResponse(choices=chat_choices, object="chat.completion", **envelope)
    else:
        text_choices = [
            CompletionChoice(
                finish_reason=openai_finish_reason(s.finish_reason),
                index=index,
                logprobs=_logprobs(endpoint, s, top_logprobs),
                text=s.text,
            )
            for index, s in chosen
        ]
        body = CompletionResponse(choices=text_choices, object="text_completion", **envelope)
    return wire(body)
