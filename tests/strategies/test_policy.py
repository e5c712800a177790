import json

import pytest

from ponder.strategies.policy import (
    PolicyBin,
    PolicyError,
    PolicyOption,
    default_policy,
    parse_policy,
)


def bins(*bounds: float) -> list[dict]:
    return [
        {"name": f"b{i}", "max_difficulty": b, "options": [{"tts": {"strategy": "none"}}]}
        for i, b in enumerate(bounds)
    ]


def test_binning_is_inclusive_of_each_upper_bound() -> None:
    table = parse_policy(json.dumps({"bins": bins(0.25, 0.5, 1.0)}))
    assert [table.bin_for(d).name for d in (0.0, 0.25, 0.26, 0.5, 0.75, 1.0)] == [
        "b0",
        "b0",
        "b1",
        "b1",
        "b2",
        "b2",
    ]
    assert table.bin_named("b1") is table.bins[1] and table.bin_named("x") is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"bins": bins(0.5, 0.25, 1.0)}, "strictly increasing"),
        ({"bins": bins(0.25, 0.5)}, "must end at max_difficulty 1.0"),
        ({"version": 2, "bins": bins(1.0)}, "version"),
        ({"probe": {"estimator": "astrology"}, "bins": bins(1.0)}, "unknown estimator"),
        (
            {
                "bins": [
                    {"name": "a", "max_difficulty": 1.0, "options": [{"tts": {"strategy": "x"}}]}
                ]
            },
            "unknown strategy 'x'",
        ),
        (
            {
                "bins": [
                    {
                        "name": "a",
                        "max_difficulty": 1.0,
                        "options": [{"tts": {"strategy": "compute_optimal"}}],
                    }
                ]
            },
            "cannot run 'compute_optimal'",
        ),
        (
            {
                "bins": [
                    {
                        "name": "a",
                        "max_difficulty": 1.0,
                        "options": [{"tts": {"strategy": "self_consistency", "n": 0}}],
                    }
                ]
            },
            "greater than or equal to 1",
        ),
    ],
)
def test_bad_tables_are_refused_with_the_reason(change: dict, message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        parse_policy(json.dumps(change))


def test_not_json_is_refused() -> None:
    with pytest.raises(PolicyError, match="not JSON"):
        parse_policy("{", "t.json")


def test_choose_prefers_accuracy_within_budget_then_fewer_tokens() -> None:
    options = [
        PolicyOption(tts={"strategy": "a"}, accuracy=0.5, tokens=100),
        PolicyOption(tts={"strategy": "b"}, accuracy=0.5, tokens=40),
        PolicyOption(tts={"strategy": "c"}, accuracy=0.7, tokens=300),
    ]
    b = PolicyBin.model_construct(name="x", max_difficulty=1.0, options=options, problems=None)
    assert b.choose(None).strategy == "c"
    assert b.choose(300).strategy == "c"
    # Equal accuracy: the cheaper one.
    assert b.choose(299).strategy == "b"
    # Nothing fits: the cheapest.
    assert b.choose(10).strategy == "b"


def test_the_shipped_table_loads() -> None:
    table = default_policy()
    assert table.version == 1 and table.bins[-1].max_difficulty == 1.0
