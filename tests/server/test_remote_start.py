"""The remote engine's start-up: what it reads from the servers, and its clear refusals."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from ponder.server import remote_start
from ponder.server.remote_start import RemoteStartError, start_remote_engine
from ponder.server.settings import Settings
from tests.verifiers import tiny_models


@pytest.fixture
def tokenizer_folder(tmp_path: Path) -> Path:
    return tiny_models.build(tmp_path / "model", "orm")


def _servers(monkeypatch: pytest.MonkeyPatch, handler) -> None:
    real = httpx.Client

    def client(**kwargs):
        return real(transport=httpx.MockTransport(handler), **kwargs)

    monkeypatch.setattr(remote_start.httpx, "Client", client)


def test_start_reads_the_model_length_and_version_and_takes_silent_servers_out(
    monkeypatch: pytest.MonkeyPatch, tokenizer_folder: Path
) -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.host == "down":
            raise httpx.ConnectError("refused", request=request)
        if request.url.path == "/v1/models":
            return httpx.Response(200, json={"data": [{"id": "served", "max_model_len": 1024}]})
        return httpx.Response(200, json={"version": "0.32.0"})

    _servers(monkeypatch, handle)
    settings = Settings(
        engine="remote", engine_urls=["http://up:1", "http://down:1"], tokenizer=tokenizer_folder
    )
    engine = start_remote_engine(settings)
    assert (engine.model_name, engine.max_model_len, engine.version) == ("served", 1024, "0.32.0")
    assert [s.healthy for s in engine.pool.servers] == [True, False]
    # The model's vocabulary from its config, as the in-process engine reports it.
    config = json.loads((tokenizer_folder / "config.json").read_text())
    assert engine.vocab_size == config["vocab_size"]


def test_start_refuses_without_urls_a_tokenizer_or_any_server(
    monkeypatch: pytest.MonkeyPatch, tokenizer_folder: Path, tmp_path: Path
) -> None:
    with pytest.raises(RemoteStartError, match="at least one --engine-url"):
        start_remote_engine(Settings(engine="remote", tokenizer=tokenizer_folder))
    with pytest.raises(RemoteStartError, match="--tokenizer must be a local folder"):
        start_remote_engine(
            Settings(engine="remote", engine_urls=["http://a:1"], tokenizer=tmp_path)
        )

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    _servers(monkeypatch, refuse)
    settings = Settings(
        engine="remote",
        engine_urls=["http://a:1"],
        tokenizer=tokenizer_folder,
        engine_start_timeout_s=0.1,
    )
    with pytest.raises(RemoteStartError, match="no remote vLLM server answered"):
        start_remote_engine(settings)


CACHE_INFO = (
    "# HELP vllm:cache_config_info Information of the LLMEngine CacheConfig\n"
    "# TYPE vllm:cache_config_info gauge\n"
    'vllm:cache_config_info{block_size="32",cache_dtype="auto",engine="0",'
    'num_gpu_blocks="%d",prefix_caching_hash_algo="sha256"} 1.0\n'
)


def test_start_sums_the_servers_kv_caches_from_their_metrics(
    monkeypatch: pytest.MonkeyPatch, tokenizer_folder: Path
) -> None:
    blocks = {"a": 100, "b": 50}

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/models":
            return httpx.Response(200, json={"data": [{"id": "served", "max_model_len": 1024}]})
        if request.url.path == "/metrics":
            return httpx.Response(200, text=CACHE_INFO % blocks[request.url.host])
        return httpx.Response(200, json={"version": "0.32.0"})

    _servers(monkeypatch, handle)
    settings = Settings(
        engine="remote", engine_urls=["http://a:1", "http://b:1"], tokenizer=tokenizer_folder
    )
    engine = start_remote_engine(settings)
    assert engine.kv_cache_tokens == (100 + 50) * 32
    # vLLM's server does not publish max_num_seqs: admission falls back to its own default.
    assert engine.max_num_seqs is None
    assert remote_start.kv_cache_tokens("vllm:num_requests_running 0.0\n") is None
