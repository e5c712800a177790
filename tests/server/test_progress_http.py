"""Progress chunks and early answers over HTTP, on the in-process app and the scripted engine:
every search sends progress before its answer, and the official `openai` client reads them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

import openai
import pytest
from openai.types import Completion
from openai.types.chat import ChatCompletionChunk

from ponder.core.engine import StreamDelta, StreamEnd
from ponder.server.progress import ProgressChunk, TTSProgress
from tests.scripted import ScriptedEngine
from tests.server.test_http import CHAT, MODEL, chat, serve, sse_events
from tests.strategies.test_progress import steps_engine

# The wire shape promised to the client library, in its order.
PROMISED = [
    "strategy",
    "phase",
    "step",
    "max_steps",
    "candidates_alive",
    "best_score",
    "completion_tokens",
    "token_budget",
    "elapsed_s",
]

SEARCHES: dict[str, dict[str, Any]] = {
    "best_of_n": {"n": 3},
    "self_consistency": {"n": 3},
    "beam_search": {"beam_width": 2},
    "prm_beam_search": {"n": 4, "beam_width": 2},
    "mcts": {"simulations": 3, "expansions": 2},
    "tree_of_thoughts": {"breadth": 2, "proposals": 2},
    "graph_of_thoughts": {"n": 2, "rounds": 1, "aggregations": 1},
    "self_refine": {"max_rounds": 1},
    "compute_optimal": {},
}


def search_engine() -> ScriptedEngine:
    engine = steps_engine()
    # Token-level beam search reads the next tokens' log-probs.
    engine.next_tokens = lambda ids: [(ord("a"), -0.1), (ord("b"), -0.2)]
    return engine


def split(events: list[Any]) -> tuple[list[dict], list[dict], int]:
    """Progress payloads, answer payloads, and the position of the first answer chunk."""
    data = [e for e in events if e != "[DONE]"]
    progress = [e for e in data if "tts_progress" in e]
    answers = [e for e in data if e.get("choices")]
    first = next(i for i, e in enumerate(data) if e.get("choices"))
    return progress, answers, first


@pytest.mark.parametrize("name", list(SEARCHES))
def test_progress_arrives_before_the_answer_and_the_openai_types_parse_it(name: str) -> None:
    tts = {"strategy": name, **SEARCHES[name]}
    body = chat(stream=True, max_tokens=40, tts=tts, stream_options={"include_usage": True})
    with serve(search_engine(), progress_interval_s=0.0) as (client, _):
        resp = client.post(CHAT, json=body)
    assert resp.status_code == 200
    events = sse_events(resp.text)
    progress, answers, first = split(events)
    assert progress and all(events.index(p) < first for p in progress[:1])
    for payload in progress:
        chunk = ChatCompletionChunk.model_validate(payload)
        assert chunk.choices == [] and chunk.object == "chat.completion.chunk"
        assert chunk.id == answers[0]["id"] and chunk.model == MODEL
        extra = chunk.model_extra
        assert extra is not None and set(extra["tts_progress"]) >= set(PROMISED)
        ProgressChunk.model_validate(payload)
    reported = [TTSProgress.model_validate(p["tts_progress"]) for p in progress]
    assert reported[0].step >= 1 and reported[0].completion_tokens >= 1
    # The last report counts no more tokens than the usage chunk does.
    usage = events[-2]["usage"]
    assert max(r.completion_tokens for r in reported) <= usage["completion_tokens"]
    text = "".join(a["choices"][0]["delta"].get("content") or "" for a in answers)
    tts_block = events[-2]["tts"]
    if "trace" in tts_block:
        assert text == tts_block["trace"][tts_block["chosen_index"]]["text"]


def test_the_openai_client_iterates_a_progress_stream() -> None:
    tts = {"strategy": "prm_beam_search", "n": 4, "beam_width": 2}
    with serve(search_engine(), progress_interval_s=0.0) as (client, _):
        api = openai.OpenAI(
            base_url=f"{client.base_url}/v1", api_key="unused", http_client=client, max_retries=0
        )
        stream = api.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "What is 2+3?"}],
            max_tokens=40,
            stream=True,
            extra_body={"tts": tts},
        )
        chunks = list(stream)
    first_content = next(i for i, c in enumerate(chunks) if c.choices)
    progress = [c for c in chunks if not c.choices]
    assert progress and chunks[0] is progress[0] and first_content > 0
    for c in progress:
        assert c.model_extra is not None
        assert c.model_extra["tts_progress"]["strategy"] == "prm_beam_search"
        assert c.model_extra["tts_progress"]["phase"] == "level"
    # Reports the stream had no time to send are replaced by later ones: steps only go up.
    steps = [c.model_extra["tts_progress"]["step"] for c in progress if c.model_extra]
    assert steps == sorted(set(steps))


def test_completions_streams_carry_progress_as_text_completion_chunks() -> None:
    body = {
        "model": MODEL,
        "prompt": "2+3=",
        "max_tokens": 40,
        "stream": True,
        "tts": {"strategy": "prm_beam_search", "n": 4, "beam_width": 2},
    }
    with serve(search_engine(), progress_interval_s=0.0) as (client, _):
        resp = client.post("/v1/completions", json=body)
    events = sse_events(resp.text)
    progress, answers, first = split(events)
    assert progress and events.index(progress[0]) < first
    for payload in progress:
        parsed = Completion.model_validate(payload)
        assert parsed.object == "text_completion" and parsed.choices == []
        assert parsed.model_extra is not None and "tts_progress" in parsed.model_extra
    assert answers[0]["choices"][0]["text"]


def test_progress_is_rate_limited_to_the_latest_report() -> None:
    # A fast search reports five levels at once; with a long interval only the first report
    # and the latest before the answer are sent.
    tts = {"strategy": "mcts", "simulations": 6, "expansions": 2}
    body = chat(stream=True, max_tokens=40, tts=tts)
    with serve(search_engine(), progress_interval_s=600.0) as (client, _):
        events = sse_events(client.post(CHAT, json=body).text)
    progress, _, _ = split(events)
    steps = [p["tts_progress"]["step"] for p in progress]
    assert len(steps) <= 2 and steps[-1] >= 2


class SlowStreamEngine(ScriptedEngine):
    """Streams one token every 20 ms, so the server sends what it has between samples."""

    async def stream(
        self, *args: Any, **kwargs: Any
    ) -> AsyncGenerator[StreamDelta | StreamEnd, None]:
        async for item in super().stream(*args, **kwargs):
            await asyncio.sleep(0.02)
            yield item


def test_a_decided_vote_streams_its_answer_before_the_last_samples_finish() -> None:
    engine = SlowStreamEngine(texts=["5", "5", "5", "7", "8", "9"])
    tts = {"strategy": "self_consistency", "n": 6}
    body = chat(stream=True, tts=tts, stream_options={"include_usage": True})
    with serve(engine, progress_interval_s=0.0) as (client, _):
        events = sse_events(client.post(CHAT, json=body).text)
    data = [e for e in events if e != "[DONE]"]
    kinds = [
        "progress" if "tts_progress" in e else "answer" if e["choices"] else "end" for e in data
    ]
    # "5" leads 3 to 0 with 3 samples left: not decided; after the 4th ("7") 3 > 1 + 2 is
    # false too; after the 5th, 3 > 1 + 1: decided with one sample still to come.
    steps = [e["tts_progress"]["step"] for e in data if "tts_progress" in e]
    assert steps == [1, 2, 3, 4, 5, 6]
    first_answer = kinds.index("answer")
    assert kinds[first_answer - 1] == "progress" and kinds.count("progress") == 6
    assert "progress" in kinds[first_answer:], "the answer came before the last sample"
    content = "".join(e["choices"][0]["delta"].get("content") or "" for e in data if e["choices"])
    assert content == "5"
    end = data[-1]
    assert end["usage"]["completion_tokens"] == 6 and end["tts"]["votes"]["5"] == 3.0
    assert end["tts"]["decided"] is True


def test_keepalives_keep_their_period_between_progress_chunks() -> None:
    # Each engine call takes 0.2 s, twice the keep-alive period: comments come while a level
    # is generated, and progress after each level.
    engine = search_engine()
    engine.delay = 0.2
    tts = {"strategy": "prm_beam_search", "n": 2, "beam_width": 2}
    with serve(engine, keepalive_s=0.1, progress_interval_s=0.0) as (client, _):
        lines = client.post(CHAT, json=chat(stream=True, max_tokens=40, tts=tts)).text.splitlines()
    kinds = [
        "keepalive" if line == ": keep-alive" else "progress" if "tts_progress" in line else "other"
        for line in lines
        if line
    ]
    first_progress = kinds.index("progress")
    assert "keepalive" in kinds[:first_progress]
    assert "keepalive" in kinds[first_progress:], "keep-alives go on after progress starts"
    assert kinds.count("progress") >= 2
