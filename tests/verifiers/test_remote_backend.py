"""Reward models on a vLLM pooling server: the request sent and the logits read back."""

from __future__ import annotations

import json
import math
from pathlib import Path

import httpx
import pytest
import torch

from ponder.verifiers.base import Candidate, Question, ScoringOptions, VerifierError
from ponder.verifiers.orm import OutcomeRewardModel
from ponder.verifiers.qwen_prm import QwenPRM
from tests.verifiers import tiny_models

QUESTION = Question(({"role": "user", "content": "what is 2 + 3 ?"},))
ANSWER = "first add 2 and 3\n\nso 5\n\nthe answer is \\boxed{5}"


def pooling_server(answer: object) -> tuple[httpx.MockTransport, list[dict]]:
    """A stand-in for `vllm serve --runner pooling`: `answer(token ids)` gives its logits."""
    bodies: list[dict] = []

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/models":
            return httpx.Response(200, json={"data": [{"id": "served-prm"}]})
        assert request.url.path == "/pooling"
        body = json.loads(request.content)
        bodies.append(body)
        data = answer(body["input"])  # type: ignore[operator]
        return httpx.Response(200, json={"data": [{"index": 0, "data": data}]})

    return httpx.MockTransport(handle), bodies


async def test_a_prm_on_a_pooling_server_reads_the_step_positions(tmp_path: Path) -> None:
    folder = tiny_models.build_process_reward_model(tmp_path / "prm")
    transport, bodies = pooling_server(
        lambda ids: tiny_models.process_reward_logits(folder, ids).tolist()
    )
    verifier = QwenPRM("prm", model=folder, backend="remote", url="http://prm/")
    verifier.scorer._transport = transport  # type: ignore[attr-defined]
    assert verifier.scorer.device == "remote" and verifier.scorer.parameter_bytes == 0
    scores = await verifier.score(
        QUESTION, [Candidate(ANSWER)], request_id="r", options=ScoringOptions()
    )
    (body,) = bodies
    assert body["model"] == "served-prm" and body["task"] == "token_classify"
    assert body["use_activation"] is False
    request = verifier.request(QUESTION, ANSWER.split("\n\n"))
    assert body["input"] == list(request.token_ids)
    rows = tiny_models.process_reward_logits(folder, body["input"])[list(request.positions)]
    expected = [math.exp(b) / (math.exp(a) + math.exp(b)) for a, b in rows.tolist()]
    assert scores.steps is not None
    assert scores.steps[0] == pytest.approx(expected, abs=1e-5)


async def test_an_orm_on_a_pooling_server_reads_the_classifier_label(tmp_path: Path) -> None:
    folder = tiny_models.build(tmp_path / "orm", "orm")
    transport, bodies = pooling_server(lambda ids: [0.5])
    verifier = OutcomeRewardModel("orm", model=folder, backend="remote", url="http://orm")
    verifier.scorer._transport = transport  # type: ignore[attr-defined]
    scores = await verifier.score(
        QUESTION, [Candidate(ANSWER)], request_id="r", options=ScoringOptions()
    )
    assert bodies[0]["task"] == "classify"
    assert list(scores.values) == [pytest.approx(torch.sigmoid(torch.tensor(0.5)).item())]


def test_backend_remote_needs_a_url(tmp_path: Path) -> None:
    folder = tiny_models.build_process_reward_model(tmp_path / "prm")
    with pytest.raises(VerifierError, match="needs the pooling server's `url`"):
        QwenPRM("prm", model=folder, backend="remote")


async def test_a_server_that_is_down_is_a_verifier_error(tmp_path: Path) -> None:
    folder = tiny_models.build_process_reward_model(tmp_path / "prm")

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    verifier = QwenPRM("prm", model=folder, backend="remote", url="http://prm")
    verifier.scorer._transport = httpx.MockTransport(refuse)  # type: ignore[attr-defined]
    with pytest.raises(VerifierError, match="not up"):
        await verifier.score(
            QUESTION, [Candidate(ANSWER)], request_id="r", options=ScoringOptions()
        )
