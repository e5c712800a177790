import pytest

from ponder.core.errors import StrategyInputError
from ponder.strategies.budget import BudgetParams
from ponder.strategies.compute_optimal import ComputeOptimal, ComputeOptimalParams
from ponder.strategies.difficulty import Probe, agreement, verifier_best, verifier_score
from ponder.strategies.policy import PolicyTable
from tests.scripted import ScriptedEngine
from tests.strategies.helpers import generation_calls, make_context


def table(**changes: object) -> PolicyTable:
    data = {
        "name": "test",
        "probe": {"n": 4, "estimator": "agreement"},
        "bins": [
            {
                "name": "easy",
                "max_difficulty": 0.25,
                "options": [{"tts": {"strategy": "self_consistency", "n": 4}}],
            },
            {
                "name": "medium",
                "max_difficulty": 0.5,
                "options": [{"tts": {"strategy": "self_consistency", "n": 6}}],
            },
            {
                "name": "hard",
                "max_difficulty": 1.0,
                "options": [
                    {
                        "tts": {"strategy": "self_consistency", "n": 8},
                        "accuracy": 0.4,
                        "tokens": 80,
                    },
                    {
                        "tts": {"strategy": "self_consistency", "n": 5},
                        "accuracy": 0.3,
                        "tokens": 50,
                    },
                ],
            },
        ],
        **changes,
    }
    return PolicyTable.model_validate(data)


def strategy(policy: PolicyTable | None = None, **params: object) -> ComputeOptimal:
    return ComputeOptimal(
        ComputeOptimalParams(strategy="compute_optimal", **params), policy or table()
    )


async def test_easy_question_answers_from_the_probe_alone() -> None:
    engine = ScriptedEngine(texts=["5", "5", "5", "6"])
    ctx = make_context(engine)
    result = await strategy().run(ctx)
    # The probe's 4 samples are the easy bin's self-consistency@4: nothing more is generated.
    assert len(generation_calls(engine)) == 1
    assert result.details["difficulty"] == {"estimate": 0.25, "bin": "easy", "source": "probe"}
    assert result.details["chosen_strategy"] == "self_consistency"
    assert result.details["probe"]["reused"] == 4
    assert result.candidates[result.ranking[0]].answer == "5"
    assert ctx.usage.completion_tokens == 4


async def test_probe_samples_are_reused_and_counted_once() -> None:
    engine = ScriptedEngine(texts=["5", "6", "5", "7", "66", "66"])
    ctx = make_context(engine, seed=3)
    result = await strategy().run(ctx)
    calls = generation_calls(engine)
    # 2 of 4 agree: medium, self-consistency@6 draws only the 2 samples the probe lacks.
    assert result.details["difficulty"]["bin"] == "medium"
    assert [c.n for c in calls] == [4, 2]
    # The remainder is drawn with another seed, so a seeded request does not redraw the probe.
    assert calls[0].options.seed == 3 and calls[1].options.seed != 3
    assert len(result.candidates) == 6
    assert ctx.usage.completion_tokens == 8 == sum(c.sequence.num_tokens for c in result.candidates)
    assert ctx.usage.engine_calls == 2
    assert result.details["votes"] == {"5": 2.0, "6": 1.0, "7": 1.0, "66": 2.0}


async def test_hard_bin_picks_the_best_option_that_fits_the_budget() -> None:
    texts = ["1", "2", "3", "4"] + ["9"] * 8
    engine = ScriptedEngine(texts=list(texts))
    # 100 tokens: after the probe's 4, the n=8 option (80 measured tokens) fits.
    ctx = make_context(engine, max_tokens=10, budget=BudgetParams(max_tokens=100))
    result = await strategy().run(ctx)
    assert result.details["chosen_params"] == {"strategy": "self_consistency", "n": 8}
    engine = ScriptedEngine(texts=list(texts))
    # 60 tokens: only the n=5 option fits what is left.
    ctx = make_context(engine, max_tokens=10, budget=BudgetParams(max_tokens=60))
    result = await strategy().run(ctx)
    assert result.details["chosen_params"] == {"strategy": "self_consistency", "n": 5}
    assert [c.n for c in generation_calls(engine)] == [4, 1]


async def test_budget_is_respected_across_probe_and_option() -> None:
    engine = ScriptedEngine(texts=["1" * 10, "2" * 10, "3" * 10, "4" * 10] + ["9" * 10] * 8)
    ctx = make_context(engine, max_tokens=10, budget=BudgetParams(max_tokens=45))
    result = await strategy().run(ctx)
    # The probe spends 40; no option fits the 5 left, so the cheapest runs, cut to 5 tokens.
    assert result.details["chosen_params"]["n"] == 5
    assert ctx.usage.completion_tokens == 45
    assert ctx.budget.exhausted == "tokens"
    assert [c.options.max_tokens for c in generation_calls(engine)] == [10, 5]


async def test_difficulty_hint_skips_the_probe() -> None:
    engine = ScriptedEngine(texts=["5"] * 6)
    result = await strategy(difficulty="medium").run(make_context(engine))
    assert [c.n for c in generation_calls(engine)] == [6]
    assert result.details["difficulty"] == {"estimate": None, "bin": "medium", "source": "hint"}
    assert "probe" not in result.details
    engine = ScriptedEngine(texts=["5"] * 4)
    result = await strategy(difficulty=0.1).run(make_context(engine))
    assert result.details["difficulty"]["bin"] == "easy"


def test_unknown_bin_or_out_of_range_hint_is_refused() -> None:
    with pytest.raises(StrategyInputError, match="no difficulty bin named 'extreme'") as err:
        strategy(difficulty="extreme")
    assert err.value.param == "tts.difficulty"
    with pytest.raises(StrategyInputError, match=r"\[0, 1\]"):
        strategy(difficulty=1.5)
    with pytest.raises(StrategyInputError, match="probe_only"):
        strategy(difficulty=0.3, probe_only=True)


async def test_probe_only_reports_difficulty_and_votes() -> None:
    engine = ScriptedEngine(texts=["5", "6", "6", "7"])
    result = await strategy(probe_only=True).run(make_context(engine))
    assert len(generation_calls(engine)) == 1
    assert result.details["chosen_strategy"] == "probe"
    assert result.details["difficulty"]["estimate"] == 0.5
    assert result.candidates[result.ranking[0]].answer == "6"


async def test_unused_probe_samples_stay_in_the_trace() -> None:
    policy = table(
        bins=[
            {
                "name": "all",
                "max_difficulty": 1.0,
                "options": [{"tts": {"strategy": "best_of_n", "n": 2, "verifier": "arithmetic"}}],
            }
        ]
    )
    engine = ScriptedEngine(texts=["5", "6", "7", "8"])
    ctx = make_context(engine, logprobs=2)
    result = await strategy(policy).run(ctx)
    # The request asked for 2 log-probs per token and the probe drew them, so best_of_n reuses 2.
    assert result.details["probe"]["reused"] == 2
    assert len(result.candidates) == 4
    assert sorted(result.ranking) == [0, 1]
    assert ctx.usage.completion_tokens == sum(c.sequence.num_tokens for c in result.candidates)


def test_plan_covers_probe_and_widest_option() -> None:
    s = strategy()
    assert s.candidates() == 8
    # Probe (4 x 10) plus the widest option (8 x 10).
    assert s.planned_tokens(10, 1) == 120
    assert strategy(probe_only=True).planned_tokens(10, 1) == 40


def test_estimators() -> None:
    from ponder.core.answers import tally
    from ponder.core.engine import GeneratedSequence

    seqs = tuple(GeneratedSequence(t, tuple(map(ord, t)), "stop") for t in ["5", "5", "x y z", "6"])
    votes = tally(["5", "5", None, "6"])
    assert agreement(Probe(seqs, votes)) == 0.5
    assert agreement(Probe((), tally([]))) == 1.0
    assert verifier_score(Probe(seqs, votes, (1.0, 0.5, None, 0.5))) == 0.5
    # One sample the verifier trusts makes the question easy for best-of-N.
    assert verifier_best(Probe(seqs, votes, (0.0, 0.9, None, 0.0))) == pytest.approx(0.1)
    assert verifier_best(Probe(seqs, votes, (None, None, None, None))) == 1.0
    assert verifier_best(Probe(seqs, votes)) == 1.0
