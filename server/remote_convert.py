"""Our engine types to the JSON of vLLM's OpenAI `/v1/completions` and back.

What a `vllm serve` must be asked for, and started with, to give the remote engine what the
in-process engine reads from vLLM's outputs (read from vLLM 0.32's
`entrypoints/openai/completion/`):
- token ids: the prompt is a list of token ids; `return_token_ids` adds each choice's generated
  `token_ids` (and, streamed, each chunk's new ones);
- log-probs: `logprobs=k` gives the sampled token's log-prob and the top k at each step;
  `return_tokens_as_token_ids` names tokens `token_id:N`, so they are ids, not ambiguous text;
- cached prompt tokens: `usage.prompt_tokens_details.cached_tokens`, only when the server runs with
  `--enable-prompt-tokens-details`. vLLM reports it for the last prompt of a multi-prompt request
  only, so the remote engine sends one request per prompt;
- the stop string that ended a choice: `stop_reason`; `include_stop_str_in_output` keeps it.
The cumulative log-prob is not returned; it is the sum of the sampled tokens' log-probs, which
vLLM computes the same way.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from ponder.core.engine import (
    EngineInputError,
    FinishReason,
    GeneratedSequence,
    SamplingOptions,
    StreamDelta,
    StreamEnd,
    TokenLogprob,
)

from .engine_common import refused_field, sampling_fields

__all__ = [
    "TOKEN_ID_PREFIX",
    "completion_body",
    "error_message",
    "finish_reason",
    "input_error",
    "sequence",
    "stream_deltas",
    "token_logprobs",
]

TOKEN_ID_PREFIX = "token_id:"
# vLLM's completions defaults, left out of the body so a request carries only what it changes.
_DEFAULTS: dict[str, Any] = {
    "n": 1,
    "temperature": 1.0,
    "top_p": 1.0,
    "top_k": 0,
    "min_p": 0.0,
    "presence_penalty": 0.0,
    "frequency_penalty": 0.0,
    "repetition_penalty": 1.0,
    "stop": None,
    "logprobs": None,
    "seed": None,
    "min_tokens": 0,
    "ignore_eos": False,
    "include_stop_str_in_output": False,
    "logit_bias": None,
    "structured_outputs": None,
}


def completion_body(
    model: str,
    prompt: Sequence[int],
    options: SamplingOptions,
    *,
    n: int,
    request_id: str,
    stream: bool,
) -> dict[str, Any]:
    """The `/v1/completions` request for one token-id prompt continued `n` times."""
    fields = sampling_fields(options, n, seeded=True)
    body: dict[str, Any] = {
        "model": model,
        "prompt": list(prompt),
        "max_tokens": fields.pop("max_tokens"),
        **{k: v for k, v in fields.items() if v != _DEFAULTS.get(k)},
        # The engine's request id in vLLM's logs and its abort; the same ids as in process.
        "request_id": request_id,
        "return_token_ids": True,
        # The prompt is already rendered with its special tokens.
        "add_special_tokens": False,
    }
    if options.logprobs is not None:
        body["return_tokens_as_token_ids"] = True
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


def finish_reason(value: str | None) -> FinishReason:
    if value in ("stop", "length"):
        return value  # type: ignore[return-value]
    return "abort"


def _token_id(name: str) -> int:
    return int(name.removeprefix(TOKEN_ID_PREFIX))


def token_logprobs(
    data: dict[str, Any] | None, token_text: Callable[[int], str]
) -> tuple[TokenLogprob, ...] | None:
    """vLLM's completion log-probs (tokens named `token_id:N`) as ours."""
    if data is None:
        return None
    result = []
    for name, logprob, top in zip(
        data["tokens"], data["token_logprobs"], data["top_logprobs"], strict=False
    ):
        if logprob is None:
            continue
        token_id = _token_id(name)
        # vLLM lists the sampled token first, then the top k: best first is by log-prob (the
        # in-process engine orders by rank, which is the same order).
        ranked = sorted((top or {}).items(), key=lambda item: -item[1])
        result.append(
            TokenLogprob(
                token_id=token_id,
                token=token_text(token_id),
                logprob=float(logprob),
                top=tuple((_token_id(k), token_text(_token_id(k)), float(v)) for k, v in ranked),
            )
        )
    return tuple(result)


def sequence(
    choice: dict[str, Any], token_text: Callable[[int], str], *, interrupted: bool = False
) -> GeneratedSequence:
    logprobs = token_logprobs(choice.get("logprobs"), token_text)
    stop = choice.get("stop_reason")
    return GeneratedSequence(
        text=choice.get("text") or "",
        token_ids=tuple(choice.get("token_ids") or ()),
        finish_reason="abort" if interrupted else finish_reason(choice.get("finish_reason")),
        logprobs=logprobs,
        cumulative_logprob=sum(t.logprob for t in logprobs) if logprobs is not None else None,
        stop_reason=stop if isinstance(stop, str) else None,
    )


def stream_deltas(
    chunk: dict[str, Any], token_text: Callable[[int], str]
) -> list[StreamDelta | StreamEnd]:
    """One streamed chunk as deltas; the usage chunk (the last) becomes the `StreamEnd`."""
    deltas: list[StreamDelta | StreamEnd] = [
        StreamDelta(
            index=int(choice["index"]),
            text=choice.get("text") or "",
            token_ids=tuple(choice.get("token_ids") or ()),
            logprobs=token_logprobs(choice.get("logprobs"), token_text),
            finish_reason=finish_reason(choice["finish_reason"])
            if choice.get("finish_reason")
            else None,
            stop_reason=stop if isinstance(stop := choice.get("stop_reason"), str) else None,
        )
        for choice in chunk.get("choices") or ()
    ]
    usage = chunk.get("usage")
    if usage and not chunk.get("choices"):
        details = usage.get("prompt_tokens_details") or {}
        deltas.append(
            StreamEnd(
                prompt_tokens=int(usage.get("prompt_tokens") or 0),
                cached_tokens=int(details.get("cached_tokens") or 0),
            )
        )
    return deltas


def error_message(status: int, text: str) -> str:
    """The message of a vLLM error response (`{"error": {"message"}}` or `{"message"}`)."""
    try:
        data = json.loads(text)
    except ValueError:
        return f"HTTP {status}"
    if isinstance(data, dict):
        inner = data.get("error", data)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return str(inner["message"])
    return f"HTTP {status}"


def input_error(status: int, text: str) -> EngineInputError:
    message = error_message(status, text)
    return EngineInputError(f"the engine refused the request: {message}", refused_field(message))
