"""Log-probs asked of vLLM in its flat form read the same as in its dict form.

vLLM fills both containers with its own `append_logprobs_for_next_position`, from the same
per-position values the engine core sends; these tests do the same and compare what Ponder reads.
"""

from __future__ import annotations

import warnings

import pytest

from ponder.core.engine import SamplingOptions

with warnings.catch_warnings():
    # Importing vLLM imports torch, whose import-time deprecation notices are not ours to fix.
    warnings.simplefilter("ignore", DeprecationWarning)
    from vllm.logprobs import FlatLogprobs, append_logprobs_for_next_position
    from vllm.outputs import CompletionOutput
    from vllm.sampling_params import RequestOutputKind

    from ponder.server.vllm_convert import sampling_params, token_logprobs

# Per position as the sampler sends it: the sampled token first (with its rank), then the top k.
POSITIONS: list[tuple[list[int], list[float], list[str | None], int]] = [
    # The sampled token is the most likely one, so it is listed twice.
    ([11, 11, 12, 13], [-0.1, -0.1, -2.5, -3.0], ["a", "a", "b", "c"], 1),
    # The sampled token is outside the top 3.
    ([40, 21, 22, 23], [-4.2, -0.3, -1.9, -2.2], [" far", "x", "y", "z"], 7),
    # No token texts (the request's text is decoded once at its end).
    ([31, 32, 31, 33], [-1.1, -0.9, -1.1, -1.5], [None, None, None, None], 2),
]


def _filled(container: list | FlatLogprobs, num_logprobs: int) -> list | FlatLogprobs:
    for ids, values, texts, rank in POSITIONS:
        k = num_logprobs + 1
        append_logprobs_for_next_position(
            container, ids[:k], values[:k], texts[:k], rank, num_logprobs
        )
    return container


def _output(logprobs: list | FlatLogprobs) -> CompletionOutput:
    token_ids = [ids[0] for ids, _, _, _ in POSITIONS]
    return CompletionOutput(
        index=0, text="", token_ids=token_ids, cumulative_logprob=None, logprobs=logprobs
    )


@pytest.mark.parametrize("num_logprobs", [0, 1, 3])
def test_flat_logprobs_read_as_the_dict_form(num_logprobs: int) -> None:
    as_dicts = token_logprobs(_output(_filled([], num_logprobs)))
    flat = token_logprobs(_output(_filled(FlatLogprobs(), num_logprobs)))
    assert flat == as_dicts
    assert flat is not None and [t.token_id for t in flat] == [11, 40, 31]
    if num_logprobs == 3:
        # The top 3 in rank order, and a sampled token outside them listed last.
        assert [tid for tid, _, _ in flat[1].top] == [21, 22, 23, 40]
        assert flat[0].top[0] == (11, "a", -0.1) and flat[2].token == ""


def test_a_slice_of_flat_logprobs_reads_as_its_positions() -> None:
    # A streamed request gets each new chunk as a slice of the request's container.
    flat = _filled(FlatLogprobs(), 3)
    output = CompletionOutput(
        index=0, text="", token_ids=[40, 31], cumulative_logprob=None, logprobs=flat[1:]
    )
    whole = token_logprobs(_output(flat))
    assert whole is not None and token_logprobs(output) == whole[1:]


def test_flat_logprobs_are_asked_for_only_with_logprobs() -> None:
    kind = RequestOutputKind.DELTA
    asked = sampling_params(SamplingOptions(max_tokens=8, logprobs=5), 1, kind, seeded=False)
    plain = sampling_params(SamplingOptions(max_tokens=8), 1, kind, seeded=False)
    assert asked.flat_logprobs is True and plain.flat_logprobs is False
