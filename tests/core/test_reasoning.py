"""Splitting thinking from answers, and counting the answer's tokens exactly."""

from __future__ import annotations

from ponder.core.engine import GeneratedSequence
from ponder.core.reasoning import StreamSplitter, split_sequence, thinking_length
from tests.thinking import THINK


def _decode(ids: object) -> str:
    return "".join(map(chr, ids))  # type: ignore[call-overload]


def _sequence(text: str) -> GeneratedSequence:
    return GeneratedSequence(text, tuple(map(ord, text)), "stop")


def test_a_sequence_splits_into_thinking_and_answer_with_the_answer_tokens_counted() -> None:
    split = split_sequence(_sequence("<think>2+3 is 5</think>The answer is 5"), THINK, _decode)
    assert split.reasoning == "2+3 is 5"
    assert split.text == "The answer is 5"
    assert split.content_tokens == len("The answer is 5") == split.returned_tokens
    assert split.num_tokens == len("<think>2+3 is 5</think>The answer is 5")
    # Splitting again changes nothing: every layer may call it.
    assert split_sequence(split, THINK, _decode) is split


def test_unfinished_thinking_returns_no_content_and_no_content_tokens() -> None:
    split = split_sequence(_sequence("<think>still going"), THINK, _decode)
    assert (split.reasoning, split.text, split.content_tokens) == ("still going", "", 0)


def test_an_unsplit_sequence_returns_all_its_tokens() -> None:
    assert _sequence("5").returned_tokens == 1 and _sequence("5").reasoning is None


def test_thinking_length_is_the_shortest_prefix_holding_the_delimiter() -> None:
    ids = tuple(map(ord, "ab</think>cd"))
    assert thinking_length(ids, "</think>", _decode) == len("ab</think>")
    assert thinking_length(tuple(map(ord, "abcd")), "</think>", _decode) is None


def test_the_stream_splitter_sends_thinking_then_answer() -> None:
    splitter = StreamSplitter(THINK)
    pieces = ["<", "think>", "hm", "m</th", "ink>", "4", "2<"]
    deltas = [splitter.feed(piece, last=piece == pieces[-1]) for piece in pieces]
    assert deltas[0] == ("", "")  # "<" may start a delimiter: held back
    assert "".join(d[0] for d in deltas) == "hmm"
    assert "".join(d[1] for d in deltas) == "42<"
