"""Confidence measures over per-token log-probs: ordering, windows and self-certainty's bounds."""

from __future__ import annotations

import math

import pytest

from ponder.core.confidence import (
    group_confidences,
    lowest_group_confidence,
    mean_token_confidence,
    self_certainty,
    tail_confidence,
    token_confidence,
)
from ponder.core.engine import TokenLogprob


def _token(top_probs: list[float]) -> TokenLogprob:
    top = tuple((i, f"t{i}", math.log(p)) for i, p in enumerate(top_probs))
    return TokenLogprob(token_id=0, token="t0", logprob=top[0][2], top=top)


SURE = _token([0.97, 0.01, 0.01])
UNSURE = _token([0.34, 0.33, 0.33])


def test_token_confidence_is_higher_for_a_peaked_distribution() -> None:
    assert token_confidence(SURE) > token_confidence(UNSURE)
    assert token_confidence(UNSURE) == pytest.approx(-(math.log(0.34) + 2 * math.log(0.33)) / 3)


def test_token_confidence_without_alternatives_reads_the_sampled_token() -> None:
    likely = TokenLogprob(token_id=1, token="a", logprob=math.log(0.9))
    unlikely = TokenLogprob(token_id=1, token="a", logprob=math.log(0.2))
    assert token_confidence(likely) > token_confidence(unlikely)


def test_group_confidences_slide_over_windows() -> None:
    tokens = [SURE, SURE, UNSURE, UNSURE, SURE]
    groups = group_confidences(tokens, 2)
    assert len(groups) == 4
    assert groups[2] == pytest.approx(token_confidence(UNSURE))
    assert lowest_group_confidence(tokens, 2) == pytest.approx(token_confidence(UNSURE))
    # Shorter than the window: one group, the mean.
    assert group_confidences(tokens[:2], 8) == [pytest.approx(token_confidence(SURE))]
    assert lowest_group_confidence([], 4) is None
    with pytest.raises(ValueError):
        group_confidences(tokens, 0)


def test_tail_and_mean_confidence() -> None:
    tokens = [UNSURE, UNSURE, SURE]
    assert tail_confidence(tokens, 1) == pytest.approx(token_confidence(SURE))
    assert mean_token_confidence(tokens) == pytest.approx(
        (2 * token_confidence(UNSURE) + token_confidence(SURE)) / 3
    )
    assert tail_confidence([], 4) is None and mean_token_confidence([]) is None


def test_self_certainty_is_zero_for_uniform_and_grows_with_sharpness() -> None:
    vocab = 4
    uniform = _token([0.25, 0.25, 0.25, 0.25])
    assert self_certainty([uniform], vocab) == pytest.approx(0.0, abs=1e-9)
    sharp = _token([0.97, 0.01, 0.01, 0.01])
    flatter = self_certainty([_token([0.5, 0.2, 0.2, 0.1])], vocab)
    sharper = self_certainty([sharp], vocab)
    assert sharper is not None and flatter is not None and sharper > flatter
    # Unreported mass is spread over the other tokens: top-2 of a uniform-4 is still uniform.
    assert self_certainty([_token([0.25, 0.25])], vocab) == pytest.approx(0.0, abs=1e-9)
    assert self_certainty([], vocab) is None
