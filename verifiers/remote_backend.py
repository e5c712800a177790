"""Reward models served by a vLLM pooling server (`vllm serve MODEL --runner pooling`).

The remote-engine topology's verifier backend: with the policy on remote vLLM servers and the
reward model on one of its own, Ponder's process needs no GPU. Each request is one `/pooling` call
with token ids and the task the head needs (`token_classify` for a PRM's per-token logits,
`classify` for an ORM's), without the activation, so the raw logits come back as vLLM's in-process
pooling runner gives them. The tokenizer and config are read from the local model folder (the
recipes need the tokenizer; the weights are not loaded). A PRM server must return every token's
logits: start it with `--pooler-config '{"tok_pooling_type": "ALL"}'`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from .base import VerifierError
from .reward_model import Head, LogitRequest, picked_logits

__all__ = ["RemotePoolingScorer"]

_TIMEOUT_S = 120.0


class RemotePoolingScorer:
    def __init__(
        self,
        path: Path,
        head: Head,
        *,
        url: str | None,
        max_batch: int = 16,
        api_key: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        from transformers import AutoTokenizer

        if not url:
            raise VerifierError("backend remote needs the pooling server's `url`")
        if head == "causal_lm":
            raise VerifierError("vLLM's pooling runner does not read LM logits; use transformers")
        self.path = path
        self.head = head
        self.device = "remote"
        self.url = url.rstrip("/")
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self._task = "token_classify" if head == "token_classification" else "classify"
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._model: str | None = None
        # At most `max_batch` requests in flight to the server at once.
        self._slots = asyncio.Semaphore(max_batch)

    @property
    def parameter_bytes(self) -> int:
        return 0  # the weights live on the server

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=_TIMEOUT_S, headers=self._headers, transport=self._transport
            )
        return self._client

    async def _served_model(self) -> str:
        if self._model is None:
            try:
                response = await self._http().get(f"{self.url}/v1/models")
                self._model = str(response.json()["data"][0]["id"])
            except (httpx.HTTPError, ValueError, KeyError, IndexError) as exc:
                raise VerifierError(f"the reward-model server at {self.url} is not up") from exc
        return self._model

    async def _one(self, request: LogitRequest) -> Any:
        import torch

        body = {
            "model": await self._served_model(),
            "input": list(request.token_ids),
            "task": self._task,
            "use_activation": False,
        }
        async with self._slots:
            try:
                response = await self._http().post(f"{self.url}/pooling", json=body)
            except httpx.HTTPError as exc:
                raise VerifierError(
                    f"the reward-model server failed: {type(exc).__name__}"
                ) from exc
        if response.status_code != 200:
            raise VerifierError(
                f"the reward-model server answered HTTP {response.status_code}: "
                f"{response.text[:200]}"
            )
        data = torch.tensor(response.json()["data"][0]["data"], dtype=torch.float32)
        return picked_logits(data, self.head, request)

    async def logits(self, requests: Sequence[LogitRequest]) -> list[Any]:
        # Sent together, so the server batches them.
        return list(await asyncio.gather(*(self._one(r) for r in requests)))

    def shutdown(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            # Without a running loop the sockets close with the process.
            with contextlib.suppress(RuntimeError):
                asyncio.get_running_loop().create_task(client.aclose())
