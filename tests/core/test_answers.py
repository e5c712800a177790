import pytest

from ponder.core.answers import answer_key, extract_answer, group_answers, tally


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("So the result is \\boxed{\\frac{1}{2}}.", "\\frac{1}{2}"),
        ("nested \\boxed{x^{2}} then \\boxed{7}", "7"),
        ("The answer is 42 apples.", "42"),
        ("Final answer: 3/4", "3/4"),
        ("steps...\n#### 1,234", "1,234"),
        ("3 + 4 = 7, which is odd", "7"),
        ("I think 12 then 15", "15"),
        ("Paris", "Paris"),
        ("", None),
        ("a" * 200, None),
    ],
)
def test_extract_answer(text: str, expected: str | None) -> None:
    assert extract_answer(text) == expected


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("7", "7.0"),
        ("1,234", "1234"),
        ("0.5", "1/2"),
        ("\\frac{1}{2}", ".5"),
        ("$7$", "7."),
        ("Paris", "paris"),
    ],
)
def test_equal_keys(a: str, b: str) -> None:
    assert answer_key(a) == answer_key(b)


def test_group_answers_exact_symbolic_and_missing() -> None:
    groups = group_answers(["7", "14/2", "x+1", "1+x", None, "8", "paris", "Paris."])
    assert groups == [0, 0, 1, 1, None, 2, 3, 3]


def test_tally_orders_by_weight_and_breaks_ties_by_first_sighting() -> None:
    votes = tally(["5", "6", "6", "5", None])
    # 5 and 6 both have two votes: 5 was seen first.
    assert votes.winner == votes.groups[0]
    assert votes.summary() == {"5": 2.0, "6": 2.0}
    assert votes.rank_representatives() == [0, 1, 2, 3, 4]
    weighted = tally(["5", "6", "6"], [0.9, 0.5, 0.5])
    assert weighted.summary() == {"6": 1.0, "5": 0.9}
    assert weighted.rank([0, 1, 2]) == [1, 2, 0]
    assert weighted.share(0) == pytest.approx(0.9 / 1.9)


def test_huge_numbers_are_compared_as_text_not_converted() -> None:
    huge = "1" * 5000
    assert answer_key(huge) == huge
    assert group_answers([huge, huge, "1"]) == [0, 0, 1]
