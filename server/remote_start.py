"""Start-up of the remote engine: reach the servers, read what they serve, load the tokenizer.

Blocking, like the in-process engine's start (it runs once in the app's lifespan). Servers that do
not answer yet are taken out of the pool and probed later; start-up fails only when none answers
within `engine_start_timeout_s`.
"""

from __future__ import annotations

import json
import logging
import re
import time
from pathlib import Path
from typing import Any

import httpx

from .engine_args import check_parallelism
from .model_store import prepare_default_model
from .remote_engine import RemoteEngine
from .routing import ServerPool
from .settings import Settings

__all__ = ["RemoteStartError", "start_remote_engine", "tokenizer_path"]

logger = logging.getLogger(__name__)


class RemoteStartError(RuntimeError):
    """The remote engine cannot start (the message says which setting to change)."""


def tokenizer_path(settings: Settings) -> Path:
    """--tokenizer, else --model, else the embedded model's prepared folder."""
    if settings.tokenizer is not None:
        return Path(settings.tokenizer).expanduser()
    if settings.model is not None:
        return Path(settings.model).expanduser()
    return prepare_default_model(settings.cache_dir)


def _vocab_size(folder: Path, tokenizer: Any) -> int:
    # The model's vocabulary (the in-process engine reports the same), else the tokenizer's.
    config = folder / "config.json"
    if config.is_file():
        size = json.loads(config.read_text()).get("vocab_size")
        if isinstance(size, int):
            return size
    return len(tokenizer)


def _describe(client: httpx.Client, url: str) -> dict[str, Any] | None:
    """The first model a server lists and its version, or None while it does not answer."""
    try:
        models = client.get(f"{url}/v1/models")
        if models.status_code != 200:
            return None
        card: dict[str, Any] = models.json()["data"][0]
        version = client.get(f"{url}/version")
        card["vllm_version"] = version.json().get("version") if version.status_code == 200 else None
        return card
    except (httpx.HTTPError, ValueError, KeyError, IndexError):
        return None


_CACHE_INFO = re.compile(r"^vllm:cache_config_info\{(?P<labels>[^}]*)\}", re.MULTILINE)


def kv_cache_tokens(metrics_text: str) -> int | None:
    """KV-cache tokens a vLLM server holds, from its `vllm:cache_config_info` series (summed over
    its engines); None when it does not say."""
    total = 0
    for match in _CACHE_INFO.finditer(metrics_text):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', match["labels"]))
        blocks, size = labels.get("num_gpu_blocks", ""), labels.get("block_size", "")
        if blocks.isdigit() and size.isdigit():
            total += int(blocks) * int(size)
    return total or None


def _kv_cache_tokens(client: httpx.Client, url: str) -> int | None:
    try:
        metrics = client.get(f"{url}/metrics")
    except httpx.HTTPError:
        return None
    return kv_cache_tokens(metrics.text) if metrics.status_code == 200 else None


def start_remote_engine(settings: Settings) -> RemoteEngine:
    # The servers own their parallelism: in-process parallel flags are refused, not ignored.
    check_parallelism(settings)
    if not settings.engine_urls:
        raise RemoteStartError("--engine remote needs at least one --engine-url")
    folder = tokenizer_path(settings)
    if not (folder / "tokenizer_config.json").is_file():
        raise RemoteStartError(
            f"--tokenizer must be a local folder with the model's tokenizer files: {folder}"
        )
    tokenizer = RemoteEngine.tokenizer_folder(folder)
    pool = ServerPool(settings.engine_urls, prefix_tokens=settings.affinity_prefix_tokens)
    headers = (
        {"Authorization": f"Bearer {settings.engine_api_key}"} if settings.engine_api_key else {}
    )
    cards: dict[int, dict[str, Any]] = {}
    deadline = time.monotonic() + settings.engine_start_timeout_s
    with httpx.Client(headers=headers, timeout=5.0) as client:
        while not cards and time.monotonic() < deadline:
            for server in pool.servers:
                card = _describe(client, server.url)
                if card is not None:
                    cards[server.index] = card
            if not cards:
                time.sleep(1.0)
    if not cards:
        raise RemoteStartError(
            f"no remote vLLM server answered within {settings.engine_start_timeout_s:g} s"
        )
    for server in pool.servers:
        if server.index not in cards:
            logger.warning(
                "remote server %d does not answer yet; it joins when healthy", server.index
            )
            pool.mark(server, healthy=False)
    with httpx.Client(headers=headers, timeout=5.0) as client:
        # The servers that answered now; one that joins later adds its cache unannounced.
        kv_tokens = [_kv_cache_tokens(client, pool.servers[i].url) for i in cards]
    known = [t for t in kv_tokens if t is not None]
    card = next(iter(cards.values()))
    if len({c["id"] for c in cards.values()}) > 1:
        raise RemoteStartError("the remote servers serve different models; a pool needs one")
    logger.info(
        "remote engine: %d of %d servers up, model %s, vLLM %s",
        len(cards),
        len(pool.servers),
        card["id"],
        card.get("vllm_version"),
    )
    return RemoteEngine(
        pool,
        tokenizer,
        model_name=settings.served_model_name or str(card["id"]),
        remote_model=str(card["id"]),
        max_model_len=int(card.get("max_model_len") or settings.max_model_len),
        vocab_size=_vocab_size(folder, tokenizer),
        version=str(card.get("vllm_version") or "unknown"),
        max_logprobs=settings.max_logprobs,
        api_key=settings.engine_api_key,
        timeout_s=settings.engine_timeout_s,
        kv_cache_tokens=sum(known) if len(known) == len(kv_tokens) else None,
    )
