"""Fake `vllm serve` processes behind an httpx.MockTransport, for the remote engine's unit tests.

They answer `/v1/completions` (whole and streamed) and `/health` in vLLM's JSON shapes, with one
character per token (token id = code point), and let a test take a server down, make it fail, or
hold its requests open. This is a test double for routing and conversion logic; the integration
tests run real `vllm serve` processes.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from ponder.server.remote_engine import RemoteEngine
from ponder.server.routing import ServerPool

__all__ = ["CharTokenizer", "FakeServer", "FakeVLLM", "remote_engine"]


class CharTokenizer:
    eos_token_id = 0

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return [ord(c) for c in text]

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        return "".join(map(chr, ids))

    def get_vocab(self) -> dict[str, int]:
        # One character per token (the printable ASCII ones stand for the rest).
        return {chr(i): i for i in range(32, 127)}

    def apply_chat_template(self, messages: list[dict[str, Any]], **_: Any) -> str:
        return "".join(f"<{m['role']}>{m['content']}" for m in messages) + "<assistant>"


@dataclass
class FakeServer:
    # Continuation of every prompt, one character per token.
    reply: str = "42"
    # "up"; "down" (connection refused); "error" (HTTP 500 on every call, /health too).
    state: str = "up"
    # While set, completions wait on this event before answering (streams stop after one chunk).
    hold: asyncio.Event | None = None
    cached_tokens: int = 0
    bodies: list[dict[str, Any]] = field(default_factory=list)
    closed: int = 0

    def choice(self, body: dict[str, Any], index: int) -> dict[str, Any]:
        text = self.reply[: body["max_tokens"]]
        stop = next((s for s in body.get("stop") or () if s in text), None)
        if stop is not None:
            text = text[: text.index(stop)] + (
                stop if body.get("include_stop_str_in_output") else ""
            )
        ids = [ord(c) for c in text]
        choice: dict[str, Any] = {
            "index": index,
            "text": text,
            "finish_reason": "stop"
            if stop is not None or len(text) < body["max_tokens"]
            else "length",
            "stop_reason": stop,
            "token_ids": ids,
        }
        if body.get("logprobs") is not None:
            choice["logprobs"] = {
                "tokens": [f"token_id:{i}" for i in ids],
                "token_logprobs": [-0.5 for _ in ids],
                # vLLM: the sampled token first, then the top k.
                "top_logprobs": [{f"token_id:{i}": -0.5, "token_id:65": -0.1} for i in ids],
                "text_offset": list(range(len(ids))),
            }
        return choice


class FakeVLLM:
    """Servers at http://s0, http://s1, ... behind one transport."""

    def __init__(self, count: int = 2) -> None:
        self.servers = [FakeServer() for _ in range(count)]
        self.urls = [f"http://s{i}" for i in range(count)]
        self.transport = httpx.MockTransport(self._handle)

    def on(self, url: str) -> FakeServer:
        return self.servers[self.urls.index(url)]

    def server_of(self, request_id: str) -> int:
        """Which server received the engine call with this id."""
        for index, server in enumerate(self.servers):
            if any(b["request_id"] == request_id for b in server.bodies):
                return index
        raise AssertionError(f"no server saw {request_id}")

    async def _handle(self, request: httpx.Request) -> httpx.Response:
        server = self.servers[int(request.url.host[1:])]
        if server.state == "down":
            raise httpx.ConnectError("connection refused", request=request)
        if server.state == "error":
            return httpx.Response(500, json={"error": {"message": "engine dead"}})
        if request.url.path == "/health":
            return httpx.Response(200)
        body = json.loads(request.content)
        server.bodies.append(body)
        if body["max_tokens"] > 1000:
            return httpx.Response(400, json={"error": {"message": "max_tokens is too large"}})
        if body.get("stream"):
            return httpx.Response(200, content=self._stream(server, body))
        if server.hold is not None:
            await server.hold.wait()
        choices = [server.choice(body, i) for i in range(body.get("n", 1))]
        usage = {
            "prompt_tokens": len(body["prompt"]),
            "completion_tokens": sum(len(c["token_ids"]) for c in choices),
            "prompt_tokens_details": {"cached_tokens": server.cached_tokens},
        }
        return httpx.Response(200, json={"choices": choices, "usage": usage})

    async def _stream(self, server: FakeServer, body: dict[str, Any]) -> AsyncIterator[bytes]:
        try:
            for i in range(body.get("n", 1)):
                whole = server.choice(body, i)
                for k, token in enumerate(whole["token_ids"]):
                    last = k == len(whole["token_ids"]) - 1
                    chunk = {
                        "choices": [
                            {
                                "index": i,
                                "text": chr(token),
                                "token_ids": [token],
                                "finish_reason": whole["finish_reason"] if last else None,
                                "stop_reason": whole["stop_reason"] if last else None,
                            }
                        ]
                    }
                    yield f"data: {json.dumps(chunk)}\n\n".encode()
                    if server.hold is not None:
                        await server.hold.wait()
                    if server.state != "up":  # died mid-stream: the connection just ends
                        return
            usage = {
                "prompt_tokens": len(body["prompt"]),
                "prompt_tokens_details": {"cached_tokens": server.cached_tokens},
            }
            yield f"data: {json.dumps({'choices': [], 'usage': usage})}\n\n".encode()
            yield b"data: [DONE]\n\n"
        finally:
            server.closed += 1


def remote_engine(fake: FakeVLLM, **pool: Any) -> RemoteEngine:
    return RemoteEngine(
        ServerPool(fake.urls, **{"probe_interval_s": 0.0, "prefix_tokens": 16, **pool}),
        CharTokenizer(),
        model_name="remote-model",
        remote_model="served",
        max_model_len=4096,
        vocab_size=0x110000,
        transport=fake.transport,
    )
