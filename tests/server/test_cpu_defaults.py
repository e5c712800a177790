"""The CPU build's thread binding and KV-cache defaults, decided before the engine starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from ponder.server.cpu_defaults import (
    BIND_VARIABLE,
    SMALL_MACHINE_CORES,
    apply_cpu_defaults,
    omp_threads_bind,
    usable_cores,
)
from ponder.server.settings import Settings


@pytest.mark.parametrize(
    ("cores", "binding"), [(1, "nobind"), (2, "nobind"), (3, "auto"), (16, "auto"), (128, "auto")]
)
def test_small_machines_do_not_keep_a_core_back(cores: int, binding: str) -> None:
    assert SMALL_MACHINE_CORES == 2
    assert omp_threads_bind(cores) == binding


def test_the_decision_is_applied_when_nobody_chose() -> None:
    env: dict[str, str] = {}
    assert apply_cpu_defaults(Settings(), env, cores=2) == "nobind"
    assert env == {BIND_VARIABLE: "nobind", "VLLM_CPU_KVCACHE_SPACE": "2"}
    env = {}
    assert apply_cpu_defaults(Settings(cpu_kv_cache_gib=3), env, cores=64) == "auto"
    assert env == {BIND_VARIABLE: "auto", "VLLM_CPU_KVCACHE_SPACE": "3"}


def test_the_users_environment_and_then_the_setting_win() -> None:
    env = {BIND_VARIABLE: "0-1", "VLLM_CPU_KVCACHE_SPACE": "4"}
    assert apply_cpu_defaults(Settings(), env, cores=2) == "0-1"
    assert env == {BIND_VARIABLE: "0-1", "VLLM_CPU_KVCACHE_SPACE": "4"}
    assert apply_cpu_defaults(Settings(cpu_omp_threads_bind="nobind"), env, cores=64) == "nobind"
    assert env[BIND_VARIABLE] == "nobind"


def test_usable_cores_follow_a_cgroup_quota(tmp_path: Path) -> None:
    cpu_max = tmp_path / "cpu.max"
    unlimited = usable_cores(tmp_path / "absent")
    assert unlimited >= 1
    cpu_max.write_text("max 100000\n")
    assert usable_cores(cpu_max) == unlimited
    # 1.5 cores of quota: two threads can run at once, if not all the time.
    cpu_max.write_text("150000 100000\n")
    assert usable_cores(cpu_max) == min(unlimited, 2)
    cpu_max.write_text("50000 100000\n")
    assert usable_cores(cpu_max) == 1
