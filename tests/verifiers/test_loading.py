import os
from pathlib import Path

import pytest

from ponder.server.settings import VerifierSpec
from ponder.verifiers.base import VerifierError
from ponder.verifiers.loading import check_gpu_shares, load_configured_verifiers
from ponder.verifiers.qwen_prm import QwenPRM
from tests.scripted import ScriptedEngine
from tests.verifiers import tiny_models


def spec(name: str, share: float | None, device: str = "cuda:0") -> VerifierSpec:
    return VerifierSpec(name=name, family="qwen_prm", device=device, gpu_memory_utilization=share)


def test_gpu_shares_must_fit_beside_the_policy() -> None:
    check_gpu_shares(0.6, [spec("a", 0.2), spec("b", 0.1)])
    with pytest.raises(VerifierError, match=r"add up to 1\.00 .*policy 0\.7, a 0\.2, b 0\.1"):
        check_gpu_shares(0.7, [spec("a", 0.2), spec("b", 0.1)])
    with pytest.raises(VerifierError, match="explicit gpu_memory_utilization: a"):
        check_gpu_shares(0.5, [spec("a", None)])
    # Verifiers on the CPU take no share of the GPU.
    check_gpu_shares(0.9, [spec("a", None, device="cpu")])


def test_gpu_shares_are_checked_per_gpu_the_policy_spans() -> None:
    # The policy takes its share of every GPU it is parallel over (tensor x pipeline x data).
    with pytest.raises(VerifierError, match=r"GPU 1 memory shares add up to 1\.00"):
        check_gpu_shares(0.8, [spec("a", 0.2, device="cuda:1")], policy_gpus=2)
    # A GPU the policy does not use holds the verifier alone.
    check_gpu_shares(0.8, [spec("a", 0.2, device="cuda:1")], policy_gpus=1)
    check_gpu_shares(0.8, [spec("a", 0.1, device="cuda:0"), spec("b", 0.1, device="cuda:1")])
    with pytest.raises(VerifierError, match="GPU 0 "):
        check_gpu_shares(0.8, [spec("a", 0.1, device="cuda"), spec("b", 0.1, device="cuda:0")])


def test_configured_model_verifiers_load_beside_the_defaults(tmp_path: Path) -> None:
    folder = tiny_models.build(tmp_path / "prm", "qwen_prm")
    engine = ScriptedEngine()
    configured = VerifierSpec(
        name="tiny_prm", family="qwen_prm", model=folder, aggregation="last", device="cpu"
    )
    loaded = load_configured_verifiers(engine, [configured])
    assert {"confidence", "self_judge", "tiny_prm"} <= set(loaded)
    prm = loaded["tiny_prm"]
    assert isinstance(prm, QwenPRM) and prm.aggregation == "last" and prm.model == "prm"
    with pytest.raises(VerifierError, match="two verifiers"):
        load_configured_verifiers(engine, [configured, configured])
    unknown = VerifierSpec(name="x", family="oracle", device="cpu")
    with pytest.raises(VerifierError, match="unknown verifier 'oracle'"):
        load_configured_verifiers(engine, [unknown])


def test_a_pooling_engine_is_built_with_the_least_cpu_kv_cache_and_the_policys_is_kept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ponder.verifiers import vllm_backend

    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "2")
    with vllm_backend._cpu_kv_cache(1):
        assert os.environ["VLLM_CPU_KVCACHE_SPACE"] == "1"
    assert os.environ["VLLM_CPU_KVCACHE_SPACE"] == "2"
    monkeypatch.delenv("VLLM_CPU_KVCACHE_SPACE")
    with vllm_backend._cpu_kv_cache(1):
        assert os.environ["VLLM_CPU_KVCACHE_SPACE"] == "1"
    assert "VLLM_CPU_KVCACHE_SPACE" not in os.environ
