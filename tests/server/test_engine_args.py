"""vLLM's parallelism settings reach AsyncEngineArgs, and conflicting ones are refused clearly."""

from __future__ import annotations

import pytest

from ponder.server.engine_args import (
    EngineSettingsError,
    ParallelismError,
    check_parallelism,
    policy_engine_args,
    policy_gpus,
)
from ponder.server.settings import Settings


def test_parallel_sizes_and_backend_reach_vllms_engine_args() -> None:
    from vllm.engine.arg_utils import AsyncEngineArgs

    settings = Settings(
        tensor_parallel_size=2,
        pipeline_parallel_size=3,
        data_parallel_size=2,
        distributed_executor_backend="mp",
    )
    args = AsyncEngineArgs(**policy_engine_args(settings, "/m", "m", cpu=False))
    assert (args.tensor_parallel_size, args.pipeline_parallel_size) == (2, 3)
    assert args.data_parallel_size == 2
    assert args.distributed_executor_backend == "mp"
    assert args.enforce_eager is False and args.block_size is None
    assert policy_gpus(settings) == 12


def test_defaults_leave_the_executor_to_vllm_and_use_cpu_blocks_on_cpu() -> None:
    from vllm.engine.arg_utils import AsyncEngineArgs

    built = policy_engine_args(Settings(), "/m", "m", cpu=True)
    assert "distributed_executor_backend" not in built
    args = AsyncEngineArgs(**built)
    assert args.pipeline_parallel_size == 1 and args.data_parallel_size == 1
    assert args.enforce_eager is True and args.block_size == 32


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"distributed_executor_backend": "uni", "pipeline_parallel_size": 2}, "runs one worker"),
        ({"distributed_executor_backend": "uni", "tensor_parallel_size": 2}, "runs one worker"),
        (
            {"distributed_executor_backend": "external_launcher", "data_parallel_size": 2},
            "torchrun",
        ),
        ({"engine": "remote", "pipeline_parallel_size": 2}, "vLLM servers own"),
        ({"engine": "remote", "distributed_executor_backend": "mp"}, "vLLM servers own"),
    ],
)
def test_conflicting_parallel_settings_are_refused(changes: dict, message: str) -> None:
    with pytest.raises(ParallelismError, match=message):
        check_parallelism(Settings(**changes))
    with pytest.raises(ParallelismError, match=message):
        policy_engine_args(Settings(**changes), "/m", "m", cpu=False)


def test_ray_backend_without_ray_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a)
    )
    with pytest.raises(ParallelismError, match="needs Ray installed"):
        check_parallelism(Settings(distributed_executor_backend="ray", pipeline_parallel_size=2))


def test_the_cpu_build_prefills_whole_prompts_and_refuses_a_budget_below_the_longest() -> None:
    from vllm.engine.arg_utils import AsyncEngineArgs

    # vLLM's CPU build stops its engine on a seeded request whose prompt is prefilled in chunks.
    args = AsyncEngineArgs(**policy_engine_args(Settings(max_model_len=4096), "/m", "m", cpu=True))
    assert args.enable_chunked_prefill is False and args.max_num_batched_tokens is None
    on_gpu = policy_engine_args(Settings(), "/m", "m", cpu=False)
    assert "enable_chunked_prefill" not in on_gpu
    fits = Settings(max_model_len=2048, max_num_batched_tokens=2048)
    assert policy_engine_args(fits, "/m", "m", cpu=True)["max_num_batched_tokens"] == 2048
    short = Settings(max_model_len=4096, max_num_batched_tokens=2048)
    with pytest.raises(EngineSettingsError, match=r"--max-num-batched-tokens.*--max-model-len"):
        policy_engine_args(short, "/m", "m", cpu=True)
