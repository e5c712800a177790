"""One settings object for the server: the single source of CLI flags and `PONDER_` variables.

Every field's description is its `--help` line, so the CLI, the environment and the docs cannot
drift apart.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from ponder.verifiers.base import Aggregation

__all__ = ["Settings", "VerifierSpec"]


class VerifierSpec(BaseModel):
    """A verifier to load at start-up, beside the ones that need no model.

    The fields are the options model-backed families share. Other keys are kept, and start-up
    checks every key against the options the family takes (`ponder.verifiers.options`), so a
    misspelt option stops start-up with an error that names the verifier and the option.
    """

    model_config = ConfigDict(extra="allow")

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="Name requests use.")
    family: str = Field(description="Registered family, e.g. qwen_prm or orm.")
    model: Path | None = Field(None, description="Local model folder (model-backed families).")
    aggregation: Aggregation | None = Field(None, description="Default step aggregation.")
    max_batch: int = Field(16, ge=1, le=1024, description="Most sequences in one forward pass.")
    device: str | None = Field(None, description="cpu, cuda or cuda:N; default: cuda if present.")
    gpu_memory_utilization: float | None = Field(
        None, gt=0, lt=1, description="Share of GPU memory this verifier may use (GPU only)."
    )
    trust_remote_code: bool = Field(False, description="Run model code shipped in the folder.")
    backend: Literal["auto", "vllm", "transformers", "remote"] = Field(
        "auto",
        description="auto: vLLM's pooling runner where it has the architecture; remote: the "
        "vLLM pooling server at `url`.",
    )
    url: str | None = Field(
        None, description="Base URL of a vLLM pooling server serving `model` (backend remote)."
    )
    api_key: str | None = Field(None, description="Bearer key that pooling server expects.")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PONDER_", extra="ignore")

    host: str = Field("127.0.0.1", description="Address to bind.")
    port: int = Field(8000, ge=0, le=65535, description="Port to bind.")
    model: Path | None = Field(
        None, description="Local HF model folder to serve; default: the embedded SmolLM2-135M."
    )
    served_model_name: str | None = Field(
        None, description="Model id clients use; default: the folder name or smollm2-135m-instruct."
    )
    cache_dir: Path | None = Field(
        None, description="Where prepared models are kept; default: $XDG_CACHE_HOME/ponder."
    )
    api_key: str | None = Field(
        None, description="If set, every /v1 request must send `Authorization: Bearer <key>`."
    )
    log_level: Literal["critical", "error", "warning", "info", "debug"] = Field(
        "info", description="Logging level of the server and Ponder's loggers."
    )

    # Engine.
    engine: str = Field(
        "vllm",
        description="What serves the policy model (server/engines.py): vllm, in process; "
        "remote, the vLLM servers at --engine-url.",
    )
    engine_urls: list[str] = Field(
        default_factory=list,
        description="A `vllm serve` base URL for --engine remote (repeat for a pool); "
        "PONDER_ENGINE_URLS takes a JSON list.",
    )
    tokenizer: Path | None = Field(
        None,
        description="Local folder with the remote model's tokenizer and chat template; "
        "default: --model, or the embedded model's folder.",
    )
    engine_api_key: str | None = Field(
        None, description="Bearer key the remote vLLM servers expect (their --api-key)."
    )
    engine_timeout_s: float = Field(
        600.0, gt=0, description="Longest wait for one remote engine call before it fails."
    )
    engine_start_timeout_s: float = Field(
        120.0, gt=0, description="How long start-up waits for a remote vLLM server to answer."
    )
    affinity_prefix_tokens: int = Field(
        256,
        ge=16,
        description="Requests whose prompts share this many leading tokens go to one remote "
        "server (its prefix cache); shorter prompts go to the least-loaded server.",
    )
    max_model_len: int = Field(4096, ge=64, description="Longest prompt plus completion.")
    gpu_memory_utilization: float = Field(
        0.85, gt=0, le=1, description="Share of GPU memory the policy engine may use (GPU only)."
    )
    # Whole GiB: vLLM parses VLLM_CPU_KVCACHE_SPACE as an integer and fails to start on "0.5".
    cpu_kv_cache_gib: int = Field(
        2, ge=1, description="KV cache GiB on the CPU build (sets VLLM_CPU_KVCACHE_SPACE)."
    )
    block_size: int | None = Field(
        None,
        ge=16,
        description="KV cache block size; default 32 on CPU so short prefixes hit the cache.",
    )
    enforce_eager: bool | None = Field(
        None, description="Skip torch.compile/CUDA graphs; default: on for CPU (faster start-up)."
    )
    tensor_parallel_size: int = Field(1, ge=1, description="GPUs to shard the policy model over.")
    pipeline_parallel_size: int = Field(
        1, ge=1, description="Pipeline stages of the policy model (GPUs or nodes, with Ray)."
    )
    data_parallel_size: int = Field(
        1, ge=1, description="Replicas of the policy model inside vLLM's engine (GPU only)."
    )
    distributed_executor_backend: Literal["mp", "ray", "uni", "external_launcher"] | None = Field(
        None, description="vLLM's executor: ray for a model that spans nodes; default: vLLM's."
    )
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = Field(
        "auto", description="Weights dtype passed to vLLM."
    )
    max_logprobs: int = Field(20, ge=1, le=100, description="Most top_logprobs a request may ask.")
    # Engine batch limits and CPU threads (server/cpu_defaults.py explains the defaults).
    max_num_seqs: int | None = Field(
        None, ge=1, description="Sequences the engine runs in one step (vLLM's; default: vLLM's)."
    )
    max_num_batched_tokens: int | None = Field(
        None, ge=1, description="Tokens the engine processes in one step (default: vLLM's)."
    )
    cpu_omp_threads_bind: str | None = Field(
        None,
        description="VLLM_CPU_OMP_THREADS_BIND for the CPU build: auto (one core kept for the "
        "scheduler), nobind, or core ids; default: the environment's, else nobind on machines "
        "with at most 2 usable cores and auto above.",
    )

    # Admission and caps.
    # Admission counts what requests put in flight in the engine (server/capacity.py).
    max_running_sequences: int | None = Field(
        None,
        ge=1,
        description="Sequences admitted requests may have in flight (a best_of_n@8 request is 8); "
        "more wait in the queue; default: twice the engine's max_num_seqs.",
    )
    max_running_tokens: int | None = Field(
        None,
        ge=1,
        description="KV-cache tokens admitted requests may reserve (prompt plus most new tokens "
        "per sequence); default: twice the engine's KV cache.",
    )
    max_concurrent_requests: int | None = Field(
        None,
        ge=1,
        description="Also cap the requests that run at once, whatever their width; default: no "
        "cap beyond sequences and tokens.",
    )
    max_queued_requests: int = Field(
        64, ge=0, description="Requests that may wait; beyond this the server answers 429."
    )
    max_tts_n: int = Field(64, ge=1, description="Cap on candidates a request may explore (tts.n).")
    max_request_tokens: int = Field(
        131072,
        ge=1,
        description="Cap on generated tokens one request may ask for (candidates x max tokens).",
    )
    default_max_tokens: int = Field(
        512, ge=1, description="Completion length when the request names none."
    )
    max_deadline_s: float = Field(
        600.0, gt=0, description="Cap on a request's wall-clock budget (tts.budget.deadline_s)."
    )
    verifiers: list[VerifierSpec] = Field(
        default_factory=list,
        description="Extra verifiers: --verifier name=prm,family=qwen_prm,model=/path (repeat); "
        "PONDER_VERIFIERS takes a JSON list.",
    )
    policy_table: Path | None = Field(
        None,
        description="compute_optimal's policy table (from `ponder calibrate`); re-read when the "
        "file changes; default: the table shipped with Ponder.",
    )
    # -- reasoning models (#13) --
    reasoning_parser: str | None = Field(
        None,
        description="vLLM reasoning parser (a name `vllm serve --reasoning-parser` accepts, e.g. "
        "qwen3, deepseek_r1): split every candidate's thinking from its answer; off by default.",
    )
    reasoning_parser_plugin: Path | None = Field(
        None, description="A Python file that registers more reasoning parsers (as vLLM's flag)."
    )
    effort_presets: Path | None = Field(
        None,
        description="reasoning_effort presets (JSON, see strategies/policies/effort.json); "
        "default: the presets shipped with Ponder.",
    )
    keepalive_s: float = Field(
        5.0, gt=0, description="Seconds between SSE keep-alive comments while a search runs."
    )
    progress_interval_s: float = Field(
        0.25,
        ge=0,
        description="Fewest seconds between a streamed search's progress chunks (the latest "
        "report is sent; 0 sends every step).",
    )
    exploration_temperature: float = Field(
        0.7,
        gt=0,
        le=2,
        description="Temperature a strategy that needs diverse samples uses when a request asks "
        "for 0 (reported in the response's tts block).",
    )

    # Hostile input, draining, exposure.
    max_body_bytes: int = Field(
        4 * 1024 * 1024, ge=1024, description="Largest request body in bytes; larger is a 413."
    )
    max_json_depth: int = Field(
        64, ge=4, le=512, description="Deepest nesting of arrays and objects in a request body."
    )
    max_number_digits: int = Field(
        64, ge=20, le=4000, description="Most digits of an integer literal in a request body."
    )
    drain_grace_s: float = Field(
        30.0,
        ge=0,
        description="On SIGTERM: seconds in-flight requests get to finish while /ready is 503 and "
        "new requests are refused with 503; then the process exits.",
    )
    public_docs: bool = Field(
        True, description="Serve /docs, /redoc and /openapi.json without the API key."
    )
    metrics_require_key: bool = Field(
        False, description="Ask for the API key on /metrics too (/health and /ready stay open)."
    )
