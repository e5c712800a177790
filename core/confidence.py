"""The model's confidence in what it generated, computed from the log-probs the engine returned.

Several methods read the same per-token signal: DeepConf's confidence-weighted voting and early
stopping (Fu et al. 2025), self-certainty best-of-N (Kang et al. 2025) and confidence-guided step
search. They must agree on what "confidence" means, so the measures live here once, in the leaf
package, over the engine protocol's `TokenLogprob` and nothing else.

All measures grow with confidence (a sharper next-token distribution gives a larger value).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from .engine import TokenLogprob

__all__ = [
    "RunningGroupConfidence",
    "bottom_group_confidence",
    "bounded_confidence",
    "group_confidences",
    "lowest_group_confidence",
    "mean_probability",
    "mean_token_confidence",
    "self_certainty",
    "tail_confidence",
    "token_confidence",
    "top_confidence",
    "window_means",
]


def token_confidence(token: TokenLogprob, top_k: int | None = None) -> float:
    """DeepConf's token confidence: minus the mean log-prob of the top-k alternatives.

    A peaked distribution puts little mass on the alternatives, so their log-probs are very
    negative and the value is large. Without alternatives it reads the sampled token alone,
    as -log(1 - p): a token the model was sure of scores high.

    An engine lists the sampled token among the alternatives, last, when it is not one of the
    top k; `top_k` reads the k best alone, which depends only on the distribution the token was
    drawn from, as an engine can compute it before sampling (`top_confidence`).
    """
    if token.top:
        return top_confidence([lp for _, _, lp in token.top[:top_k]])
    return -math.log1p(-min(math.exp(token.logprob), 1.0 - 1e-9))


def top_confidence(logprobs: Sequence[float]) -> float:
    """Token confidence from the log-probs of the best alternatives, best first."""
    return -sum(logprobs) / len(logprobs)


def group_confidences(
    tokens: Sequence[TokenLogprob], window: int, top_k: int | None = None
) -> list[float]:
    """Mean token confidence over every sliding window of `window` tokens (one value when the
    sequence is shorter than the window)."""
    return window_means([token_confidence(t, top_k) for t in tokens], window)


def window_means(values: Sequence[float], window: int) -> list[float]:
    """`group_confidences` of token confidences already computed (recorded traces replay it)."""
    if window < 1:
        raise ValueError("window must be at least 1")
    if not values:
        return []
    if len(values) <= window:
        return [sum(values) / len(values)]
    running = sum(values[:window])
    groups = [running / window]
    for i in range(window, len(values)):
        running += values[i] - values[i - window]
        groups.append(running / window)
    return groups


def lowest_group_confidence(
    tokens: Sequence[TokenLogprob], window: int, top_k: int | None = None
) -> float | None:
    """The least confident stretch of a trace (DeepConf's "lowest group confidence")."""
    groups = group_confidences(tokens, window, top_k)
    return min(groups) if groups else None


def tail_confidence(
    tokens: Sequence[TokenLogprob], tail: int, top_k: int | None = None
) -> float | None:
    """Mean token confidence over the last `tail` tokens, where the answer is stated."""
    if not tokens:
        return None
    last = tokens[-tail:]
    return sum(token_confidence(t, top_k) for t in last) / len(last)


def mean_token_confidence(tokens: Sequence[TokenLogprob]) -> float | None:
    """Mean token confidence over the whole trace."""
    if not tokens:
        return None
    return sum(token_confidence(t) for t in tokens) / len(tokens)


def mean_probability(tokens: Sequence[TokenLogprob]) -> float | None:
    """The geometric mean of the sampled tokens' probabilities, exp(mean log-prob), in (0, 1]:
    how likely the model found what it wrote, per token. It reads only the sampled tokens'
    log-probs, so the engine need report no alternatives."""
    if not tokens:
        return None
    return math.exp(sum(t.logprob for t in tokens) / len(tokens))


def bounded_confidence(confidence: float) -> float:
    """A token or group confidence (in [0, inf)) mapped onto [0, 1), as 1 - exp(-confidence),
    for callers that compare it with scores in [0, 1] (a search mixing it with a verifier's).

    Monotone, so it keeps every order the confidence gives; with alternatives it reads as one
    minus the geometric mean of their probabilities.
    """
    return -math.expm1(-max(confidence, 0.0))


def self_certainty(tokens: Sequence[TokenLogprob], vocab_size: int) -> float | None:
    """Kang et al.'s self-certainty: the mean KL divergence from the uniform distribution to the
    model's next-token distribution, KL(U || p) = -log V - (1/V) * sum_j log p_j.

    The engine reports only the top-k alternatives; the rest of the mass is spread evenly over
    the other V - k tokens, which is the least-committal completion of what was observed.
    """
    if not tokens:
        return None
    if vocab_size < 2:
        raise ValueError("vocab_size must be at least 2")
    total = 0.0
    for token in tokens:
        top = token.top or ((token.token_id, token.token, token.logprob),)
        k = min(len(top), vocab_size)
        seen = sum(math.exp(lp) for _, _, lp in top[:k])
        rest = max(1.0 - seen, 1e-12)
        others = vocab_size - k
        sum_log = sum(lp for _, _, lp in top[:k])
        if others:
            sum_log += others * math.log(rest / others)
        total += -math.log(vocab_size) - sum_log / vocab_size
    return total / len(tokens)


# -- for DeepConf (strategies/deepconf.py): the bottom share of groups, and a running window ------


def bottom_group_confidence(
    tokens: Sequence[TokenLogprob], window: int, share: float = 0.1, top_k: int | None = None
) -> float | None:
    """Mean of the least confident `share` of a trace's group confidences (DeepConf's
    "bottom-10% group confidence"; at least one group)."""
    groups = sorted(group_confidences(tokens, window, top_k))
    if not groups:
        return None
    lowest = groups[: max(1, math.ceil(share * len(groups)))]
    return sum(lowest) / len(lowest)


class RunningGroupConfidence:
    """The group confidence of a trace as it is generated, a token at a time (DeepConf online).

    `current` is the mean token confidence of the last `window` tokens once that many arrived,
    and `lowest` the least of those values so far: the same numbers `group_confidences` gives for
    the whole trace, without reading the trace again at every token.
    """

    def __init__(self, window: int, top_k: int | None = None) -> None:
        if window < 1:
            raise ValueError("window must be at least 1")
        self.window = window
        self.top_k = top_k
        self._values: list[float] = []
        self._running = 0.0
        self.current: float | None = None
        self.lowest: float | None = None

    @property
    def trace_lowest(self) -> float | None:
        """`lowest`, or for a trace shorter than the window the mean of all of it: what
        `lowest_group_confidence` reads from a whole trace, without reading it again."""
        if self.lowest is not None or not self._values:
            return self.lowest
        return self._running / len(self._values)

    def add(self, tokens: Sequence[TokenLogprob]) -> None:
        for token in tokens:
            self.add_value(token_confidence(token, self.top_k))

    def add_value(self, value: float) -> None:
        """One more token's confidence (an engine that computes it itself, before sampling)."""
        self._values.append(value)
        self._running += value
        if len(self._values) > self.window:
            self._running -= self._values[-self.window - 1]
        if len(self._values) >= self.window:
            self.current = self._running / self.window
            self.lowest = self.current if self.lowest is None else min(self.lowest, self.current)
