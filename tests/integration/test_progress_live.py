"""Streamed searches on the real engine: progress chunks come before the answer, and a streamed
vote's early answer keeps the usage exact.

The time to the first progress chunk and to the first content chunk are logged (run with
`-o log_cli=true --log-cli-level=INFO` to read them) and recorded as test properties; they are
measurements, not assertions.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import httpx
import pytest
from openai.types.chat import ChatCompletionChunk

from tests.integration.conftest import MODEL, LiveServer

pytestmark = pytest.mark.integration

logger = logging.getLogger(__name__)

QUESTION = [{"role": "user", "content": "What is 23 + 45? Think step by step."}]
SMALL = {"max_steps": 3, "step_tokens": 24, "verifier": "arithmetic"}
SEARCHES = {
    "prm_beam_search": {"n": 4, "beam_width": 2, **SMALL},
    "mcts": {"simulations": 3, "expansions": 2, **SMALL},
}


def streamed(tts: dict[str, Any], max_tokens: int) -> dict[str, Any]:
    """A streamed chat request with usage and the trace."""
    return {
        "model": MODEL,
        "messages": QUESTION,
        "max_completion_tokens": max_tokens,
        "temperature": 0.8,
        "stream": True,
        "stream_options": {"include_usage": True},
        "tts": {**tts, "return_trace": True},
    }


def timed_stream(server: LiveServer, body: dict[str, Any]) -> list[tuple[float, dict[str, Any]]]:
    """Every `data:` payload of a chat stream with the seconds since the request was sent."""
    events: list[tuple[float, dict[str, Any]]] = []
    url = f"{server.base_url}/v1/chat/completions"
    started = time.perf_counter()
    with httpx.stream("POST", url, json=body, timeout=300) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                events.append((time.perf_counter() - started, json.loads(line[6:])))
    return events


@pytest.mark.parametrize("strategy", list(SEARCHES))
def test_progress_chunks_arrive_before_the_first_content_chunk(
    server: LiveServer, strategy: str, record_property: Any
) -> None:
    events = timed_stream(server, streamed({"strategy": strategy, **SEARCHES[strategy]}, 48))
    chunks = [ChatCompletionChunk.model_validate(payload) for _, payload in events]
    first_content = next(i for i, c in enumerate(chunks) if c.choices)
    progress = [i for i, c in enumerate(chunks) if "tts_progress" in (c.model_extra or {})]
    assert progress and progress[0] < first_content
    for i in progress:
        assert chunks[i].choices == []
        report = (chunks[i].model_extra or {})["tts_progress"]
        assert report["strategy"] == strategy and report["step"] >= 1
    # Reports only go forward, and count no more tokens than the request's usage.
    steps = [(chunks[i].model_extra or {})["tts_progress"]["step"] for i in progress]
    assert steps == sorted(steps)
    usage = chunks[-1].usage
    assert usage is not None
    last = (chunks[progress[-1]].model_extra or {})["tts_progress"]
    assert 0 < last["completion_tokens"] <= usage.completion_tokens
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    tts = (chunks[-1].model_extra or {})["tts"]
    assert text == tts["trace"][tts["chosen_index"]]["text"]
    to_progress, to_content = events[progress[0]][0], events[first_content][0]
    record_property("first_progress_s", round(to_progress, 3))
    record_property("first_content_s", round(to_content, 3))
    logger.info(
        "%s: first progress %.3f s, first content %.3f s, %d progress chunks",
        strategy,
        to_progress,
        to_content,
        len(progress),
    )


def test_a_streamed_vote_counts_every_sample_it_streams(server: LiveServer) -> None:
    generated = "vllm:generation_tokens_total"
    before = server.metric(generated)
    body = streamed({"strategy": "self_consistency", "n": 4}, 32)
    chunks = [ChatCompletionChunk.model_validate(p) for _, p in timed_stream(server, body)]
    usage = chunks[-1].usage
    tts = (chunks[-1].model_extra or {})["tts"]
    assert usage is not None and len(tts["trace"]) == 4
    assert usage.completion_tokens == sum(c["tokens"] for c in tts["trace"]) > 0
    expected = before + usage.completion_tokens
    assert server.wait_metric(generated, expected) == expected
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == tts["trace"][tts["chosen_index"]]["text"]
    steps = [
        (c.model_extra or {})["tts_progress"]["step"]
        for c in chunks
        if "tts_progress" in (c.model_extra or {})
    ]
    assert steps and steps == sorted(steps) and steps[-1] <= 4
