"""Verifiers through the real server: the generative step judge, a model-backed PRM loaded at
start-up, and the arithmetic checker choosing among the embedded model's answers."""

from __future__ import annotations

import random

import pytest
from openai.types.chat import ChatCompletionMessageParam

from ponder.core.answers import answer_key
from ponder.verifiers.steps import split_steps
from tests.integration.conftest import (
    MODEL,
    TINY_PRM,
    VLLM_ORM,
    VLLM_PRM,
    LiveServer,
    both_engines,
    tts_block,
)

pytestmark = pytest.mark.integration

GENERATED = "vllm:generation_tokens_total"
QUESTION_TEXT = "What is 23 + 45? Think step by step, then give the answer."
QUESTION: list[ChatCompletionMessageParam] = [{"role": "user", "content": QUESTION_TEXT}]


def best_of_n(server: LiveServer, verifier: str, **tts: object):
    return server.client.chat.completions.create(
        model=MODEL,
        messages=QUESTION,
        max_completion_tokens=48,
        temperature=0.8,
        extra_body={
            "tts": {"strategy": "best_of_n", "verifier": verifier, "return_trace": True, **tts}
        },
    )


def test_step_judge_scores_each_step_with_the_policy_model(server: LiveServer) -> None:
    before = server.metric(GENERATED)
    response = best_of_n(server, "step_judge", n=3)
    tts = tts_block(response)
    trace = tts["trace"]
    for candidate in trace:
        steps = split_steps(candidate["text"])
        assert len(candidate["step_scores"]) == len(steps)
        assert all(0 <= s <= 1 for s in candidate["step_scores"])
        if steps:
            assert candidate["score"] == pytest.approx(min(candidate["step_scores"]))
    usage = response.usage
    assert usage is not None
    # The judge generated one token per distinct step it was asked about, nothing more.
    judged = server.settled_metric(GENERATED) - before - usage.completion_tokens
    total_steps = sum(len(split_steps(c["text"])) for c in trace)
    assert 0 < judged <= total_steps
    assert tts["verifier_tokens"] > judged


def test_self_certainty_ranks_by_the_top_logprobs_at_no_engine_cost(server: LiveServer) -> None:
    before = server.metric(GENERATED)
    response = best_of_n(server, "self_certainty", n=3)
    tts = tts_block(response)
    usage = response.usage
    assert usage is not None and tts["verifier"] == "self_certainty"
    scores = [c["score"] for c in tts["trace"]]
    # 0 only for an empty answer, which shows no certainty.
    assert all(0 <= s < 1 for s in scores) and max(scores) > 0
    assert tts["trace"][tts["chosen_index"]]["score"] == max(scores)
    # Read from the samples' own log-probs: the engine generated the answers and nothing more.
    expected = before + usage.completion_tokens
    assert server.wait_metric(GENERATED, expected) == expected
    assert tts["verifier_tokens"] == 0


def test_genselect_picks_one_candidate_in_one_list_wise_call(server: LiveServer) -> None:
    before = server.metric(GENERATED)
    response = best_of_n(server, "genselect", n=3)
    tts = tts_block(response)
    usage = response.usage
    assert usage is not None and tts["verifier"] == "genselect"
    scores = sorted(c["score"] for c in tts["trace"])
    # One pick: a one-hot vote, or every candidate neutral when the reply named none.
    assert scores in ([0.0, 0.0, 1.0], [0.5, 0.5, 0.5])
    if scores[-1] == 1.0:
        assert tts["trace"][tts["chosen_index"]]["score"] == 1.0
    # The engine generated the answers and one selection reply of at most 256 tokens.
    selection = server.settled_metric(GENERATED) - before - usage.completion_tokens
    assert 0 < selection <= 256
    assert tts["verifier_tokens"] > selection


def test_configured_model_prm_scores_steps_through_the_server(server: LiveServer) -> None:
    calls_before = server.metric("ponder_verifier_calls_total", verifier=TINY_PRM)
    response = best_of_n(server, TINY_PRM, n=3, aggregation="mean")
    tts = tts_block(response)
    assert tts["verifier"] == TINY_PRM and tts["verifier_calls"] == 3
    for candidate in tts["trace"]:
        steps = split_steps(candidate["text"])
        assert len(candidate["step_scores"]) == len(steps)
        if steps:
            expected = sum(candidate["step_scores"]) / len(steps)
            assert candidate["score"] == pytest.approx(expected)
    assert server.metric("ponder_verifier_calls_total", verifier=TINY_PRM) == calls_before + 3
    again = best_of_n(server, TINY_PRM, n=1)
    assert tts_block(again)["verifier_calls"] == 1


def test_strategies_endpoint_lists_the_configured_prm(server: LiveServer) -> None:
    import httpx

    listing = httpx.get(f"{server.base_url}/v1/strategies", timeout=10).json()
    verifiers = {v["name"]: v for v in listing["verifiers"]}
    assert verifiers[TINY_PRM]["family"] == "qwen_prm"
    assert verifiers[TINY_PRM]["kind"] == "process"
    assert verifiers[TINY_PRM]["model"] == "prm"


def addition_problems(count: int, seed: int = 7) -> list[tuple[str, int]]:
    rng = random.Random(seed)
    pairs = [(rng.randint(10, 99), rng.randint(10, 99)) for _ in range(count)]
    return [(f"What is {a} + {b}? Reply with only the final number.", a + b) for a, b in pairs]


def test_arithmetic_checker_picks_a_correct_answer_whenever_there_is_one(
    server: LiveServer,
) -> None:
    had_correct = 0
    for seed, (question, truth) in enumerate(addition_problems(10)):
        response = server.client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": question}],
            max_completion_tokens=24,
            temperature=0.7,
            # Seeded, so that which problems have a correct candidate does not vary run to run.
            seed=seed,
            extra_body={
                "tts": {
                    "strategy": "best_of_n",
                    "n": 16,
                    "verifier": "arithmetic",
                    "aggregation": "last",
                    "return_trace": True,
                }
            },
        )
        tts = tts_block(response)
        trace = tts["trace"]
        correct = [
            c["index"] for c in trace if c["answer"] and answer_key(c["answer"]) == f"#{truth}"
        ]
        chosen = trace[tts["chosen_index"]]
        assert response.choices[0].message.content == chosen["text"]
        if correct:
            had_correct += 1
            assert chosen["index"] in correct, (question, chosen, trace)
            assert chosen["score"] == 1.0
        else:
            assert chosen["score"] != 1.0
    # The check above must have had something to check (about a third of problems have a correct
    # candidate among 16 samples of this model).
    assert had_correct >= 1


@both_engines  # in process, and remote: a vLLM pooling server of its own (backend remote)
def test_a_prm_vllm_implements_runs_on_its_pooling_runner(server: LiveServer) -> None:
    from transformers import AutoTokenizer

    from ponder.verifiers.qwen_prm import STEP_SEPARATOR, SYSTEM_PROMPT
    from tests.verifiers import tiny_models

    response = best_of_n(server, VLLM_PRM, n=3, aggregation="prod")
    tts = tts_block(response)
    folder = server.models / "vllm_prm"
    tok = AutoTokenizer.from_pretrained(folder)
    marker = tok.convert_tokens_to_ids(STEP_SEPARATOR)
    checked = 0
    for candidate in tts["trace"]:
        steps = split_steps(candidate["text"])
        if not steps:
            continue
        messages = [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": QUESTION_TEXT},
            {"role": "assistant", "content": STEP_SEPARATOR.join(steps) + STEP_SEPARATOR},
        ]
        ids = tok.encode(
            tok.apply_chat_template(messages, tokenize=False), add_special_tokens=False
        )
        logits = tiny_models.process_reward_logits(folder, ids)
        rows = logits[[i for i, t in enumerate(ids) if t == marker]]
        expected = rows.softmax(-1)[:, 1].tolist()
        # vLLM computes in bf16 on CPU: close to the float32 reference, not equal.
        assert candidate["step_scores"] == pytest.approx(expected, abs=0.02)
        assert candidate["score"] == pytest.approx(
            __import__("math").prod(candidate["step_scores"])
        )
        checked += 1
    assert checked > 0


def test_an_orm_vllm_implements_runs_on_its_pooling_runner(server: LiveServer) -> None:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    response = best_of_n(server, VLLM_ORM, n=3)
    tts = tts_block(response)
    folder = server.models / "vllm_orm"
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder, dtype=torch.float32)
    for candidate in tts["trace"]:
        messages = [
            {"role": "user", "content": QUESTION_TEXT},
            {"role": "assistant", "content": candidate["text"]},
        ]
        ids = tok.encode(
            tok.apply_chat_template(messages, tokenize=False), add_special_tokens=False
        )
        with torch.no_grad():
            reward = model.eval()(input_ids=torch.tensor([ids])).logits[0, 0]
        assert candidate["score"] == pytest.approx(torch.sigmoid(reward).item(), abs=0.02)
    assert tts["verifier_tokens"] > 0
