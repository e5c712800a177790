"""The confidence measures a search compares with verifier scores: both in [0, 1]."""

from __future__ import annotations

import math

import pytest

from ponder.core.confidence import bounded_confidence, mean_probability, token_confidence
from ponder.core.engine import TokenLogprob


def _sampled(logprob: float) -> TokenLogprob:
    return TokenLogprob(token_id=1, token="x", logprob=logprob)


def test_mean_probability_is_the_geometric_mean_of_the_token_probabilities() -> None:
    tokens = [_sampled(math.log(0.9)), _sampled(math.log(0.4))]
    assert mean_probability(tokens) == pytest.approx(math.sqrt(0.9 * 0.4))
    assert mean_probability([]) is None


def test_bounded_confidence_keeps_order_within_zero_and_one() -> None:
    values = [0.0, 0.1, 1.0, 5.0, 20.0]
    bounded = [bounded_confidence(v) for v in values]
    assert bounded == sorted(bounded) and len(set(bounded)) == len(bounded)
    assert bounded[0] == 0.0 and all(0.0 <= b < 1.0 for b in bounded)
    # A token reported without alternatives: its bounded confidence is its probability.
    assert bounded_confidence(token_confidence(_sampled(math.log(0.7)))) == pytest.approx(0.7)
