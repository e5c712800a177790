"""Every refusal vLLM can raise for a request's input becomes an EngineInputError (a 400).

vLLM's `VLLMValidationError` is not a ValueError, so catching ValueError alone let greedy `n > 1`
through as a 500. These run vLLM's own parameter checks (no engine is started).
"""

from __future__ import annotations

import warnings
from types import SimpleNamespace
from typing import Any, cast

import pytest

from ponder.core.engine import EngineError, EngineInputError, SamplingOptions

with warnings.catch_warnings():
    # Importing vLLM imports torch, whose import-time deprecation notices are not ours to fix.
    warnings.simplefilter("ignore", DeprecationWarning)
    from vllm.exceptions import VLLMValidationError
    from vllm.sampling_params import RequestOutputKind
    from vllm.v1.engine.exceptions import EngineDeadError

    from ponder.server.vllm_convert import sampling_params
    from ponder.server.vllm_engine import VLLMEngine
    from ponder.verifiers.base import VerifierError
    from ponder.verifiers.reward_model import LogitRequest
    from ponder.verifiers.vllm_backend import VLLMPoolingScorer

FINAL = RequestOutputKind.FINAL_ONLY


@pytest.mark.parametrize(
    ("options", "n", "param", "says"),
    [
        (SamplingOptions(max_tokens=8, temperature=0.0), 2, None, "greedy"),
        (SamplingOptions(max_tokens=8, presence_penalty=3.0), 1, None, "presence_penalty"),
        (SamplingOptions(max_tokens=8, top_p=0.0), 1, "top_p", "top_p"),
        (SamplingOptions(max_tokens=8, min_p=2.0), 1, None, "min_p"),
        (SamplingOptions(max_tokens=8, stop=("",)), 1, None, "stop"),
        (SamplingOptions(max_tokens=0), 1, None, "max_tokens"),
    ],
)
def test_sampling_parameter_refusals_are_engine_input_errors(
    options: SamplingOptions, n: int, param: str | None, says: str
) -> None:
    with pytest.raises(EngineInputError) as raised:
        sampling_params(options, n, FINAL, seeded=True)
    assert raised.value.param == param
    assert says in str(raised.value)


def test_greedy_single_sample_is_accepted() -> None:
    params = sampling_params(SamplingOptions(max_tokens=8, temperature=0.0), 1, FINAL, seeded=True)
    assert params.n == 1 and params.temperature == 0.0


class _Tokenizer:
    eos_token_id = 0
    backend_tokenizer = None

    def get_vocab(self) -> dict[str, int]:
        return {"a": 1, "abcd": 2}


class _RefusingLLM:
    """vLLM's AsyncLLM as far as the wrapper sees it, refusing every request as it is added."""

    def __init__(self, error: BaseException) -> None:
        self.error = error
        self.aborted: list[str] = []
        self.model_config = SimpleNamespace(get_vocab_size=lambda: 100)
        self.vllm_config = SimpleNamespace(
            cache_config=SimpleNamespace(num_gpu_blocks=10, block_size=32),
            scheduler_config=SimpleNamespace(max_num_seqs=128),
            parallel_config=SimpleNamespace(data_parallel_size=2),
        )

    def get_tokenizer(self) -> _Tokenizer:
        return _Tokenizer()

    async def add_request(self, *args: Any, **kwargs: Any) -> Any:
        raise self.error

    async def abort(self, ids: list[str]) -> None:
        self.aborted.extend(ids)


@pytest.mark.parametrize(
    ("error", "expected", "param"),
    [
        (VLLMValidationError("bad seed", parameter="seed"), EngineInputError, "seed"),
        (ValueError("prompt is longer than the model's context"), EngineInputError, None),
        (TypeError("token ids must be integers"), EngineInputError, None),
        (EngineDeadError(), EngineError, None),
    ],
)
async def test_refusals_while_adding_a_request(
    error: BaseException, expected: type[Exception], param: str | None
) -> None:
    llm = _RefusingLLM(error)
    engine = VLLMEngine(llm, model_name="m", max_model_len=64, on_cpu=True, max_logprobs=20)
    assert engine.max_token_chars == 4
    with pytest.raises(expected) as raised:
        await engine.generate([[1, 2]], SamplingOptions(max_tokens=4), request_id="r")
    if expected is EngineInputError:
        assert getattr(raised.value, "param", None) == param
    assert llm.aborted == ["r-0"] and engine.running_requests() == 0


def test_the_engine_reports_what_vllm_runs_at_once() -> None:
    # Admission's defaults: max_num_seqs per data-parallel engine, the KV cache summed over them.
    engine = VLLMEngine(
        _RefusingLLM(ValueError()), model_name="m", max_model_len=64, on_cpu=True, max_logprobs=20
    )
    assert engine.max_num_seqs == 256
    assert engine.kv_cache_tokens == 320


async def test_greedy_samples_are_refused_before_reaching_vllm() -> None:
    llm = _RefusingLLM(AssertionError("must not be reached"))
    engine = VLLMEngine(llm, model_name="m", max_model_len=64, on_cpu=True, max_logprobs=20)
    options = SamplingOptions(max_tokens=4, temperature=0.0)
    with pytest.raises(EngineInputError, match="greedy"):
        await engine.generate([[1]], options, n=2, request_id="r")
    with pytest.raises(EngineInputError, match="greedy"):
        async for _ in engine.stream([1], options, n=2, request_id="s"):
            pass


class _RefusingPooler:
    """vLLM's pooling engine refusing the input as it is added."""

    def __init__(self, error: BaseException) -> None:
        self.error = error

    def encode(self, *args: Any, **kwargs: Any) -> Any:
        async def refuse() -> Any:
            raise self.error
            yield  # an async generator, as vLLM's encode is

        return refuse()


@pytest.mark.parametrize(
    "error",
    [VLLMValidationError("prompt too long"), ValueError("bad token"), TypeError("bad type")],
)
async def test_reward_model_refusals_are_verifier_errors(error: BaseException) -> None:
    scorer = VLLMPoolingScorer.__new__(VLLMPoolingScorer)  # no engine: only the error path
    scorer._llm = cast(Any, _RefusingPooler(error))
    scorer._task = "classify"
    with pytest.raises(VerifierError, match="refused the input"):
        await scorer.logits([LogitRequest(token_ids=(1, 2))])
