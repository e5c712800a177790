"""Each reward-model recipe against a tiny random-weight model: positions read and scores."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from typing import Any, cast

import pytest
import torch
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    AutoTokenizer,
)

from ponder.verifiers.base import Candidate, Question, ScoringOptions
from ponder.verifiers.math_shepherd_prm import MathShepherdPRM
from ponder.verifiers.orm import OutcomeRewardModel
from ponder.verifiers.qwen_prm import QwenPRM
from ponder.verifiers.rlhflow_prm import RLHFlowPRM
from ponder.verifiers.transformers_backend import TransformersScorer
from tests.verifiers import tiny_models

QUESTION = Question(({"role": "user", "content": "what is 2 + 3 ?"},))
ANSWER = "first add 2 and 3\n\nso 5\n\nthe answer is \\boxed{5}"
STEPS = ["first add 2 and 3", "so 5", "the answer is \\boxed{5}"]


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny")
    return {
        family: tiny_models.build(root / family, family, seed=i)
        for i, family in enumerate(["qwen_prm", "math_shepherd", "rlhflow", "orm"])
    }


def reference_logits(folder: Path, auto: Any, ids: list[int]) -> torch.Tensor:
    model = auto.from_pretrained(folder, dtype=torch.float32).eval()
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids])).logits[0]


def batches_run(verifier: Any) -> int:
    """Batches the verifier's model ran (these tests run it on transformers)."""
    scorer = verifier.scorer
    assert isinstance(scorer, TransformersScorer)
    return scorer.batches_run


async def score(verifier, text: str = ANSWER, **options: Any):
    return await verifier.score(
        QUESTION, [Candidate(text)], request_id="r", options=ScoringOptions(**options)
    )


async def test_qwen_prm_reads_each_extra_0_position(folders: dict[str, Path]) -> None:
    folder = folders["qwen_prm"]
    verifier = QwenPRM("prm", model=folder)
    tok = AutoTokenizer.from_pretrained(folder)
    text = tok.apply_chat_template(
        [
            {
                "role": "system",
                "content": "Please reason step by step, and put your final "
                "answer within \\boxed{}.",
            },
            {"role": "user", "content": QUESTION.text},
            {"role": "assistant", "content": "<extra_0>".join(STEPS) + "<extra_0>"},
        ],
        tokenize=False,
    )
    ids = tok.encode(text, add_special_tokens=False)
    marker = tok.convert_tokens_to_ids("<extra_0>")
    positions = [i for i, t in enumerate(ids) if t == marker]
    assert len(positions) == 3
    assert list(verifier.request(QUESTION, STEPS).positions) == positions
    logits = reference_logits(folder, AutoModelForTokenClassification, ids)[positions]
    expected = [math.exp(row[1]) / (math.exp(row[0]) + math.exp(row[1])) for row in logits.tolist()]
    scores = await score(verifier)
    assert scores.steps is not None
    assert list(scores.steps[0]) == pytest.approx(expected, abs=1e-5)
    assert scores.values[0] == pytest.approx(min(expected), abs=1e-5)
    assert scores.tokens == len(ids)


async def test_math_shepherd_reads_plus_against_minus_at_each_tag(folders) -> None:
    folder = folders["math_shepherd"]
    verifier = MathShepherdPRM("ms", model=folder)
    tok = AutoTokenizer.from_pretrained(folder)
    ids = tok.encode(QUESTION.text + " " + "".join(f"{s} ки\n" for s in STEPS))
    tag, plus, minus = cast(list[int], tok.convert_tokens_to_ids(["ки", "+", "-"]))
    positions = [i for i, t in enumerate(ids) if t == tag]
    assert len(positions) == 3 and ids[0] == tok.bos_token_id
    assert list(verifier.request(QUESTION, STEPS).positions) == positions
    logits = reference_logits(folder, AutoModelForCausalLM, ids)
    expected = [
        math.exp(logits[p, plus]) / (math.exp(logits[p, plus]) + math.exp(logits[p, minus]))
        for p in positions
    ]
    for how, value in [
        ("min", min(expected)),
        ("last", expected[-1]),
        ("prod", math.prod(expected)),
        ("mean", sum(expected) / 3),
    ]:
        scores = await score(verifier, aggregation=how)
        assert list(scores.steps[0]) == pytest.approx(expected, abs=1e-5)
        assert scores.values[0] == pytest.approx(value, abs=1e-5), how


async def test_rlhflow_reads_the_position_before_each_plus_turn(folders) -> None:
    folder = folders["rlhflow"]
    verifier = RLHFlowPRM("rl", model=folder)
    tok = AutoTokenizer.from_pretrained(folder)
    conversation = []
    for k, step in enumerate(STEPS):
        conversation.append(
            {"role": "user", "content": (QUESTION.text + " " if k == 0 else "") + step}
        )
        conversation.append({"role": "assistant", "content": "+"})
    ids = tok.encode(
        tok.apply_chat_template(conversation, tokenize=False), add_special_tokens=False
    )
    plus, minus = cast(list[int], tok.convert_tokens_to_ids(["+", "-"]))
    # Each assistant turn is "<|im_start|> assistant +": the logits one before "+" are read.
    positions = [
        i - 1
        for i, t in enumerate(ids)
        if t == plus and ids[i - 1] == tok.convert_tokens_to_ids("assistant")
    ]
    assert len(positions) == 3
    assert list(verifier.request(QUESTION, STEPS).positions) == positions
    logits = reference_logits(folder, AutoModelForCausalLM, ids)
    expected = [
        math.exp(logits[p, plus]) / (math.exp(logits[p, plus]) + math.exp(logits[p, minus]))
        for p in positions
    ]
    scores = await score(verifier, aggregation="last")
    assert list(scores.steps[0]) == pytest.approx(expected, abs=1e-5)
    assert scores.values[0] == pytest.approx(expected[-1], abs=1e-5)


async def test_orm_scores_the_whole_conversation(folders) -> None:
    folder = folders["orm"]
    # vLLM could run this architecture too; this test is about the transformers path.
    verifier = OutcomeRewardModel("orm", model=folder, backend="transformers")
    tok = AutoTokenizer.from_pretrained(folder)
    texts = [ANSWER, "so 6"]
    expected = []
    for text in texts:
        messages = [*QUESTION.messages, {"role": "assistant", "content": text}]
        ids = tok.encode(
            tok.apply_chat_template(messages, tokenize=False), add_special_tokens=False
        )
        model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
        with torch.no_grad():
            reward = model(input_ids=torch.tensor([ids])).logits[0, 0].item()
        expected.append(1 / (1 + math.exp(-reward)))
    scores = await verifier.score(QUESTION, [Candidate(t) for t in texts], request_id="r")
    # Both in one padded batch, and each equals its own unpadded forward pass.
    assert list(scores.values) == pytest.approx(expected, abs=1e-5)
    assert batches_run(verifier) == 1


async def test_concurrent_requests_share_a_batch_and_the_cache_serves_prefixes(folders) -> None:
    verifier = MathShepherdPRM("ms", model=folders["math_shepherd"])
    first, second = await asyncio.gather(
        score(verifier, ANSWER), score(verifier, "so 5\n\nthe answer is 5")
    )
    assert batches_run(verifier) == 1
    assert first.cache_hits == 0 and second.cache_hits == 0
    again = await score(verifier, ANSWER)
    assert again.cache_hits == 3 and again.tokens == 0
    assert again.steps == first.steps
    assert batches_run(verifier) == 1


def test_a_family_without_a_model_folder_is_a_clear_error(tmp_path: Path) -> None:
    from ponder.verifiers.base import VerifierError

    with pytest.raises(VerifierError, match="model"):
        QwenPRM("prm")
    with pytest.raises(VerifierError, match=r"config\.json"):
        QwenPRM("prm", model=tmp_path)
