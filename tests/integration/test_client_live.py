"""The Python client and `ponder ask` against the real server (vLLM, the embedded model):
every strategy through the client, streamed and not, errors as typed exceptions, and
`ponder ask --plain` as a person would run it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from ponder_client import (
    AsyncPonder,
    BadRequestError,
    ChatCompletionChunk,
    NotFoundError,
    Ponder,
    ProgressChunk,
)
from ponder_client.options import STRATEGY_OPTIONS

from tests.integration.conftest import MODEL, LiveServer

pytestmark = pytest.mark.integration

QUESTION = "What is 17 * 23? Think step by step."
STEPS = {"max_steps": 2, "step_tokens": 16, "verifier": "arithmetic"}
# Small settings, so the whole set runs in about a minute on two cores.
PARAMS: dict[str, dict[str, Any]] = {
    "none": {},
    "best_of_n": {"n": 2, "verifier": "arithmetic"},
    "self_consistency": {"n": 2},
    "beam_search": {"beam_width": 2},
    "prm_beam_search": {"n": 2, "beam_width": 2, **STEPS},
    "mcts": {"simulations": 2, "expansions": 2, **STEPS},
    "tree_of_thoughts": {"breadth": 2, "proposals": 2, **STEPS},
    "graph_of_thoughts": {"n": 2, "rounds": 1, "aggregations": 1, "verifier": "arithmetic"},
    "rsa": {"population": 2, "subset": 2, "rounds": 1},
    "deepconf": {"n": 2, "warmup": 1},
    "self_refine": {"max_rounds": 1, "verifier": "arithmetic"},
    "compute_optimal": {"difficulty": "easy"},
}


def test_every_strategy_has_live_settings() -> None:
    assert set(PARAMS) == set(STRATEGY_OPTIONS)


@pytest.mark.parametrize("name", list(PARAMS))
def test_every_strategy_through_the_client_streamed_and_not(server: LiveServer, name: str) -> None:
    options = STRATEGY_OPTIONS[name](**PARAMS[name])
    with Ponder(server.base_url, max_retries=0) as ponder:
        reply = ponder.chat(QUESTION, strategy=options, max_tokens=24, temperature=0.8)
        assert reply.model == MODEL and reply.tts.strategy == name
        assert reply.usage.completion_tokens == reply.tts.generated_tokens > 0
        assert reply.usage.returned_tokens <= reply.usage.completion_tokens
        chunks = list(ponder.stream_chat(QUESTION, strategy=options, max_tokens=24))
    answers = [c for c in chunks if isinstance(c, ChatCompletionChunk)]
    last = answers[-1]
    assert last.tts is not None and last.usage is not None and last.tts.strategy == name
    assert last.usage.completion_tokens == last.tts.generated_tokens > 0
    assert any(c.text for c in answers)
    # Every event is typed: progress (where the server reports it) or a chunk of the answer.
    progress = [c for c in chunks if isinstance(c, ProgressChunk)]
    assert len(progress) + len(answers) == len(chunks)
    assert all(c.choices == [] and c.progress.elapsed_s >= 0 for c in progress)


async def test_the_async_client_and_typed_errors(server: LiveServer) -> None:
    async with AsyncPonder(server.base_url, max_retries=0) as ponder:
        assert await ponder.ready() and await ponder.health()
        listing = await ponder.strategies()
        assert {s.name for s in listing.data} == set(STRATEGY_OPTIONS)
        with pytest.raises(BadRequestError) as bad:
            await ponder.chat(QUESTION, strategy={"strategy": "prm_beam_search", "n": 0})
        assert bad.value.param == "tts.n"
        with pytest.raises(NotFoundError) as missing:
            await ponder.chat(QUESTION, model="no-such-model")
        assert missing.value.param == "model"
        chunks = [c async for c in ponder.stream_chat(QUESTION, max_tokens=8)]
        last = chunks[-1]
        assert isinstance(last, ChatCompletionChunk) and last.usage is not None
        assert 0 < last.usage.completion_tokens <= 8


def test_ponder_ask_plain(server: LiveServer) -> None:
    ponder = Path(sys.executable).parent / "ponder"
    command = [str(ponder), "ask", "What is 17 * 23?", "--server", server.base_url]
    options = ["--strategy", "prm_beam_search", "--verifier", "arithmetic", "-n", "2"]
    small = ["--param", "beam_width=2", "--param", "max_steps=2", "--max-tokens", "24"]
    done = subprocess.run(
        [*command, *options, *small, "--trace", "--plain"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    answer, _, summary = done.stdout.partition("\n\nstrategy:")
    assert answer.strip()  # the streamed answer comes first
    for row in ("prm_beam_search", "candidates:", "tokens generated:", "verifier calls:"):
        assert row in summary
    assert "search tree (" in summary and "└─ #" in summary
    refused = subprocess.run(
        [*command, "--strategy", "best_of_n", "--verifier", "no_such_verifier", "--plain"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert refused.returncode == 1 and "tts.verifier" in refused.stderr
