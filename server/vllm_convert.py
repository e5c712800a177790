"""Our engine types to vLLM's and back: sampling parameters in, completion outputs out.

Kept apart from `vllm_engine.py` so that the engine wrapper is about submitting and collecting
requests, and the field-by-field mapping (with its measured reasons) can be read on its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ponder.core.engine import (
    EngineInputError,
    FinishReason,
    GeneratedSequence,
    Generation,
    SamplingOptions,
    TokenLogprob,
)
from ponder.core.vllm_compat import input_error_types, structured_outputs_params

from .engine_common import refused_field, sampling_fields

if TYPE_CHECKING:
    from vllm.outputs import CompletionOutput

__all__ = [
    "engine_input_error",
    "finish_reason",
    "generation",
    "sampling_params",
    "sequence",
    "token_logprobs",
]

# vLLM's sampling parameters that are also the client's field of the same name, so a refusal of
# one of them names the field (`n` and `max_tokens` are not: a strategy sets its own).
_CLIENT_FIELDS = frozenset(
    {
        "temperature",
        "top_p",
        "top_k",
        "min_p",
        "presence_penalty",
        "frequency_penalty",
        "repetition_penalty",
        "seed",
        "stop",
        "min_tokens",
        "logit_bias",
    }
)
# vLLM's names for parameters the client sent under another name.
_RENAMED_FIELDS = {"structured_outputs": "response_format"}


def engine_input_error(exc: BaseException, what: str) -> EngineInputError:
    """vLLM's refusal of a request as our EngineInputError (a 400), naming the field if it can.

    vLLM raises `VLLMValidationError` (not a ValueError) for most checks and plain ValueErrors or
    TypeErrors for the rest; all of them are the request's fault, none may become a 500.
    """
    parameter = getattr(exc, "parameter", None)
    param = parameter if parameter in _CLIENT_FIELDS else _RENAMED_FIELDS.get(str(parameter))
    if param is None:
        param = refused_field(str(exc))
    return EngineInputError(f"{what}: {exc}", param=param)


# vLLM's SamplingParams defaults by field, read once from the class.
_DEFAULTS: dict[str, Any] = {}


def _sampling_defaults() -> dict[str, Any]:
    import msgspec
    from vllm import SamplingParams

    return {
        f.name: f.default
        for f in msgspec.structs.fields(SamplingParams)
        if f.default is not msgspec.NODEFAULT
    }


def sampling_params(
    options: SamplingOptions,
    n: int,
    kind: Any,
    *,
    seeded: bool,
    stream_interval: int = 1,
    extra_args: dict[str, Any] | None = None,
) -> Any:
    """vLLM's SamplingParams for `options`; vLLM's refusals become EngineInputError.

    `stream_interval` > 1 has a streamed request's new tokens handed over that many at a time
    (and always at its end), where this vLLM supports it. `extra_args` reach the engine's
    logits processors (`vllm_confidence_stop.py`).
    """
    from vllm import SamplingParams

    if not _DEFAULTS:
        _DEFAULTS.update(_sampling_defaults())
    wanted = {
        **sampling_fields(options, n, seeded=seeded),
        "detokenize": options.detokenize,
        "output_kind": kind,
        # vLLM deep-copies a request's parameters unless told it may copy them shallowly; the
        # deep copy was about a tenth of the time between two submissions. Shallow is enough:
        # vLLM sets fields on its copy, and the one container it changes in place (the stop
        # token set) only gains the model's EOS ids, the same for every request.
        "skip_clone": True,
        "stream_interval": stream_interval if stream_interval > 1 else None,
        # Log-probs as a few flat lists per request instead of a dict and a Logprob object per
        # alternative of every token: less work in this process per token.
        "flat_logprobs": options.logprobs is not None,
        "extra_args": extra_args,
    }
    # Only what differs from vLLM's defaults: explicitly passed defaults were measured to slow
    # the engine's steps by about 5% (bench/beam_search.py). Fields this vLLM lacks
    # (`skip_clone` is recent) are left out rather than refused.
    changed = {k: v for k, v in wanted.items() if k in _DEFAULTS and v != _DEFAULTS[k]}
    try:
        if "structured_outputs" in changed:
            changed["structured_outputs"] = structured_outputs_params(changed["structured_outputs"])
        return SamplingParams(**changed)
    except input_error_types() as exc:
        raise engine_input_error(exc, "invalid sampling parameters") from exc


def finish_reason(output: CompletionOutput) -> FinishReason:
    if output.finish_reason in ("stop", "length"):
        return output.finish_reason  # type: ignore[return-value]
    return "abort"


def token_logprobs(output: CompletionOutput) -> tuple[TokenLogprob, ...] | None:
    if output.logprobs is None:
        return None
    if hasattr(output.logprobs, "start_indices"):
        return _flat_token_logprobs(output.token_ids, output.logprobs)
    result = []
    for token_id, alternatives in zip(output.token_ids, output.logprobs, strict=False):
        if alternatives is None:
            continue
        chosen = alternatives[token_id]
        ranked = sorted(
            (a for a in alternatives.items() if a[1].rank is not None and a[1].rank > 0),
            key=lambda item: item[1].rank or 0,
        )
        result.append(
            TokenLogprob(
                token_id=token_id,
                token=chosen.decoded_token or "",
                logprob=float(chosen.logprob),
                top=tuple((tid, lp.decoded_token or "", float(lp.logprob)) for tid, lp in ranked),
            )
        )
    return tuple(result)


def _flat_token_logprobs(token_ids: Sequence[int], flat: Any) -> tuple[TokenLogprob, ...]:
    """The same as the dict form gives, read from vLLM's `FlatLogprobs`: per position, the
    sampled token first, then the top alternatives in rank order. As in the dict form, the
    sampled token is listed among the alternatives, last, when it is not one of them."""
    ids, values, texts = flat.token_ids, flat.logprobs, flat.decoded_tokens
    result = []
    for token_id, start, end in zip(token_ids, flat.start_indices, flat.end_indices, strict=False):
        if start == end:
            continue
        top = [(ids[i], texts[i] or "", float(values[i])) for i in range(start + 1, end)]
        chosen = (token_id, texts[start] or "", float(values[start]))
        if token_id not in ids[start + 1 : end]:
            top.append(chosen)
        result.append(
            TokenLogprob(token_id=token_id, token=chosen[1], logprob=chosen[2], top=tuple(top))
        )
    return tuple(result)


def sequence(output: CompletionOutput, *, interrupted: bool = False) -> GeneratedSequence:
    return GeneratedSequence(
        text=output.text,
        token_ids=tuple(output.token_ids),
        finish_reason="abort" if interrupted else finish_reason(output),
        logprobs=token_logprobs(output),
        cumulative_logprob=output.cumulative_logprob,
        stop_reason=output.stop_reason if isinstance(output.stop_reason, str) else None,
    )


def generation(state: Any, prompt_len: int, n: int, interrupted: bool) -> Generation:
    """One prompt's Generation from (its latest RequestOutput, its samples by index), or None."""
    if state is None:
        empty = GeneratedSequence(text="", token_ids=(), finish_reason="abort")
        return Generation((empty,) * n, prompt_tokens=prompt_len, interrupted=True)
    out, by_index = state
    sequences = tuple(
        # A sample that finished before the deadline is whole, whatever its siblings did.
        sequence(by_index[i], interrupted=interrupted and by_index[i].finish_reason is None)
        if i in by_index
        else GeneratedSequence(text="", token_ids=(), finish_reason="abort")
        for i in range(n)
    )
    return Generation(
        sequences,
        prompt_tokens=len(out.prompt_token_ids or ()) or prompt_len,
        cached_tokens=int(out.num_cached_tokens or 0),
        interrupted=interrupted and not out.finished,
    )
