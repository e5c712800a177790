import time

import pytest

from ponder.strategies.budget import Budget, BudgetParams


@pytest.mark.parametrize(
    ("max_tokens", "used", "prompts", "n", "length", "expected", "exhausted"),
    [
        (None, 0, 1, 8, 100, (8, 100), None),
        (800, 0, 1, 8, 100, (8, 100), None),
        (799, 0, 1, 8, 100, (7, 100), "tokens"),
        (1000, 950, 1, 8, 100, (1, 50), "tokens"),
        (1000, 1000, 1, 8, 100, (0, 0), "tokens"),
        (400, 0, 2, 4, 100, (2, 100), "tokens"),
        (1, 0, 2, 1, 100, (0, 0), "tokens"),
    ],
)
def test_fit_samples_never_overruns(max_tokens, used, prompts, n, length, expected, exhausted):
    budget = Budget(BudgetParams(max_tokens=max_tokens))
    budget.tokens_used = used
    fitted = budget.fit_samples(prompts, n, length)
    assert fitted == expected
    assert budget.exhausted == exhausted
    if max_tokens is not None:
        assert used + prompts * fitted[0] * fitted[1] <= max_tokens


def test_verifier_calls_and_deadline() -> None:
    budget = Budget(BudgetParams(max_verifier_calls=5, deadline_s=10), started=time.monotonic())
    assert budget.fit_verifier_calls(4) == 4
    budget.verifier_calls = 4
    assert budget.fit_verifier_calls(4) == 1
    assert budget.exhausted == "verifier_calls"
    assert not budget.past_deadline()
    expired = Budget(BudgetParams(deadline_s=1), started=time.monotonic() - 2)
    assert expired.past_deadline() and expired.exhausted == "deadline"
