"""Two real `vllm serve` processes (the CPU build, embedded model) and Ponder's remote engine on
them, started once per test session beside the in-process server.

The vLLM flags are the ones the remote engine needs (README, "Scale"):
`--enable-prompt-tokens-details` for cached prompt tokens; the rest keep the CPU build small and
quick to start.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import httpx

__all__ = [
    "POOLING_PRM_FLAGS",
    "VLLMServer",
    "remote_ponder",
    "start_ponder",
    "stop_process",
    "vllm_server_command",
    "wait_until",
]

# A process reward model on vLLM's pooling runner, every token's logits returned.
POOLING_PRM_FLAGS = (
    "--runner",
    "pooling",
    "--pooler-config",
    '{"tok_pooling_type": "ALL"}',
    "--max-model-len",
    "512",
)


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """Ask a server to stop, and kill it if it has not within a minute."""
    process.terminate()
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()


def wait_until(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited at start-up:\n{log.read_text()[-4000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} was not ready in time:\n{log.read_text()[-4000:]}")
        time.sleep(0.5)


def vllm_server_command(
    model: Path, name: str, port: int, extra: tuple[str, ...] = ()
) -> list[str]:
    return [
        sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(model),
        "--served-model-name",
        name,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--enforce-eager",
        "--disable-uvicorn-access-log",
        *(
            extra
            or (
                "--max-model-len",
                "2048",
                "--block-size",
                "32",
                "--enable-prompt-tokens-details",
                # vLLM's CPU build stops its engine on a seeded prompt prefilled in chunks
                # (server/engine_args.py); Ponder's in-process engine is started the same way.
                "--no-enable-chunked-prefill",
            )
        ),
    ]


@dataclass
class VLLMServer:
    """One `vllm serve` that a test may kill and start again on the same port."""

    model: Path
    name: str
    port: int
    log: Path
    # Flags instead of the policy server's (a reward model's pooling server).
    extra: tuple[str, ...] = ()
    # Several servers share this machine's two cores: vLLM's default binding would pin each
    # one's threads to the same core.
    env: dict[str, str] = field(default_factory=lambda: {"VLLM_CPU_OMP_THREADS_BIND": "nobind"})
    # On a GPU shared with other engines (a benchmark's in-process engine): their memory shares.
    gpu_memory_utilization: float | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", **self.env}
        command = vllm_server_command(self.model, self.name, self.port, self.extra)
        if self.gpu_memory_utilization is not None:
            command += ["--gpu-memory-utilization", str(self.gpu_memory_utilization)]
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # its engine core child dies with it when killed
            )

    def wait_ready(self, timeout: float = 600) -> None:
        assert self.process is not None
        wait_until(f"{self.url}/health", self.process, self.log, timeout)

    def kill(self) -> None:
        """Die at once, as a crashed server does (no draining)."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            stop_process(self.process)
        if self.process is not None:
            # The engine core child is in the server's session: make sure nothing is left.
            with suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)


def start_ponder(
    log: Path, env: dict[str, str], *flags: str, port: int, timeout: float
) -> tuple[subprocess.Popen[bytes], str]:
    """`ponder serve --port PORT FLAGS` with `env` added to this environment, once /ready."""
    command = [sys.executable, "-m", "ponder.server.cli", "serve", "--port", str(port), *flags]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **env}
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_until(f"{base_url}/ready", process, log, timeout)
    except RuntimeError:
        process.kill()
        raise
    return process, base_url


@contextmanager
def remote_ponder(
    servers: list[VLLMServer], tokenizer: Path, port: int, log: Path, env: dict[str, str]
) -> Iterator[str]:
    """Ponder with --engine remote on `servers`; yields its base URL."""
    flags = ["--engine", "remote", "--tokenizer", str(tokenizer)]
    for server in servers:
        flags += ["--engine-url", server.url]
    process, base_url = start_ponder(log, env, *flags, port=port, timeout=300)
    try:
        yield base_url
    finally:
        stop_process(process)
