import json
from pathlib import Path

import pytest

from ponder.core.answers import equivalent
from ponder.evaluation.datasets import DatasetError, load_dataset


def test_jsonl_problems_are_checked_by_answer_equivalence(tmp_path: Path) -> None:
    path = tmp_path / "set.jsonl"
    rows = [
        {"id": "a", "question": "2+3?", "answer": "5", "difficulty": "easy"},
        {"question": "Half of one?", "answer": "1/2"},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    problems = load_dataset(str(path))
    assert [p.id for p in problems] == ["a", "set-2"]
    assert problems[0].difficulty == "easy"
    assert problems[0].check("5.0") and not problems[0].check("6") and not problems[0].check(None)
    assert problems[1].check("0.5") and problems[1].check("\\frac{1}{2}")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"question": "q"}', "set.jsonl:1: needs an 'answer'"),
        ('{"answer": 1}', "needs a string 'question'"),
        ("not json", "set.jsonl:1: not JSON"),
        ("", "holds no problems"),
    ],
)
def test_bad_jsonl_says_where(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "set.jsonl"
    path.write_text(text)
    with pytest.raises(DatasetError, match=message):
        load_dataset(str(path))


def test_missing_file_is_a_dataset_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="cannot read"):
        load_dataset(str(tmp_path / "absent.jsonl"))


def test_reasoning_gym_generator_with_config_and_its_scorer() -> None:
    spec = "rg:chain_sum?size=3&seed=7&min_terms=2&max_terms=2&min_digits=1&max_digits=1"
    problems = load_dataset(spec)
    again = load_dataset(spec)
    assert len(problems) == 3 and [p.question for p in problems] == [p.question for p in again]
    assert [p.id for p in problems] == ["chain_sum-7-0", "chain_sum-7-1", "chain_sum-7-2"]
    first = problems[0]
    assert first.check(first.answer)
    assert not first.check(str(int(first.answer) + 1)) and not first.check(None)


def test_unknown_generator_is_a_dataset_error() -> None:
    with pytest.raises(DatasetError, match="cannot create reasoning-gym data set"):
        load_dataset("rg:no_such_task?size=2")


def test_equivalent() -> None:
    assert equivalent("1,000", "1000")
    assert not equivalent("10", "1000")
