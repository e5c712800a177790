"""CPU defaults for vLLM's CPU build, chosen before the engine starts: thread binding, KV cache.

vLLM's default, `VLLM_CPU_OMP_THREADS_BIND=auto` (vllm/utils/ompmultiprocessing.py), pins the
model worker's OpenMP threads to one logical CPU per physical core of its NUMA node, keeps one core
per worker back (`reserve_cpu_num`) for the engine core's scheduler process, and sets
`OMP_NUM_THREADS` to the cores left. With `nobind` nothing is pinned and `OMP_NUM_THREADS` is not
set, so vLLM 0.32 runs the worker's torch with one thread (`set_torch_threads_for_runtime`).

On a large machine `auto` is right: dozens of pinned threads against one reserved core, where
`nobind` would leave one thread. On a 2-core machine `auto` leaves the model one thread too, pinned
to core 0 (core 1 reserved), so whatever else runs on core 0 (the scheduler, Ponder's API process,
other processes on a shared machine) takes turns with it while core 1 may be idle; unpinned, the
thread runs on whichever core is free. In Ponder on the 2-core CI machine `nobind` gave about 25 %
more throughput under load (issue #16; README, "Admission and CPU defaults"). Hence: `nobind` up
to SMALL_MACHINE_CORES usable cores, vLLM's `auto` above. An explicit setting wins, then the
variable already in the environment (the user's), then this choice.

Usable cores are those this process may run on (its affinity mask, which taskset and cpusets
set) and no more than a cgroup CPU quota allows (a container's CPU limit).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import MutableMapping
from pathlib import Path

from .settings import Settings

__all__ = [
    "BIND_VARIABLE",
    "SMALL_MACHINE_CORES",
    "apply_cpu_defaults",
    "omp_threads_bind",
    "usable_cores",
]

logger = logging.getLogger(__name__)

BIND_VARIABLE = "VLLM_CPU_OMP_THREADS_BIND"
KV_CACHE_VARIABLE = "VLLM_CPU_KVCACHE_SPACE"
# Up to this many usable cores, keeping one back for the scheduler costs more than it saves.
SMALL_MACHINE_CORES = 2
_CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def _quota_cores(cpu_max: Path) -> int | None:
    """Cores a cgroup v2 CPU quota allows ("max 100000" is none), rounded up."""
    try:
        quota, period = cpu_max.read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    return max(1, math.ceil(int(quota) / int(period)))


def usable_cores(cpu_max: Path = _CGROUP_CPU_MAX) -> int:
    """Logical CPUs this process may use: its affinity mask, capped by a cgroup quota."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    quota = _quota_cores(cpu_max)
    return min(cores or 1, quota) if quota is not None else (cores or 1)


def omp_threads_bind(cores: int) -> str:
    """vLLM's thread binding for a machine with `cores` usable cores."""
    return "nobind" if cores <= SMALL_MACHINE_CORES else "auto"


def apply_cpu_defaults(
    settings: Settings, environ: MutableMapping[str, str] | None = None, cores: int | None = None
) -> str:
    """Set the CPU build's variables for the engine about to start; returns the binding."""
    env = os.environ if environ is None else environ
    # The CPU build sizes its KV cache from the first NUMA node and refuses to start at vLLM's
    # default share; an explicit size always works.
    env.setdefault(KV_CACHE_VARIABLE, str(settings.cpu_kv_cache_gib))
    if settings.cpu_omp_threads_bind is not None:
        env[BIND_VARIABLE] = settings.cpu_omp_threads_bind
        source = "--cpu-omp-threads-bind"
    elif BIND_VARIABLE in env:
        source = "the environment"
    else:
        count = usable_cores() if cores is None else cores
        env[BIND_VARIABLE] = omp_threads_bind(count)
        source = f"{count} usable cores"
    logger.info("CPU engine: %s=%s (from %s)", BIND_VARIABLE, env[BIND_VARIABLE], source)
    return env[BIND_VARIABLE]
