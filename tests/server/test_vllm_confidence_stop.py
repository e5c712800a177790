"""DeepConf's in-engine stop on vLLM's own logits-processor types: a marked sequence ends at the
first token whose group confidence is below its request's floor, computed as the strategy
computes it from the log-probs vLLM reports, and nothing else is touched.

The processor is driven as vLLM's input batch drives it (`update_state` with a `BatchUpdate`,
then `apply` on a step's logits); `tests/integration/test_adaptive_live.py` runs it in the engine.
"""

from __future__ import annotations

import math
import sys
import warnings

import pytest
import torch

from ponder.core.confidence import RunningGroupConfidence
from ponder.core.engine import TokenLogprob

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from vllm import SamplingParams
    from vllm.utils.import_utils import resolve_obj_by_qualname
    from vllm.v1.sample.logits_processor import (
        BatchUpdate,
        MoveDirectionality,
        _load_logitsprocs_by_fqcns,
    )

    from ponder.server.engine_args import confidence_stop_args
    from ponder.server.vllm_confidence_stop import (
        EXTENSION,
        MAX_FLOORS,
        PROCESSOR,
        ConfidenceFloorCalls,
        ConfidenceStopProcessor,
        stop_marker,
    )

VOCAB = 12
EOS = 0


def _processor() -> ConfidenceStopProcessor:
    return ConfidenceStopProcessor(None, torch.device("cpu"), False)  # type: ignore[arg-type]


def _added(index: int, key: str | None, output: list[int], window: int = 3) -> tuple:
    extra = stop_marker(key, window, 2, EOS) if key is not None else None
    return (index, SamplingParams(extra_args=extra), [5, 6], output)


def _update(added=(), removed=(), moved=(), size: int = 4) -> BatchUpdate:
    return BatchUpdate(batch_size=size, removed=list(removed), added=list(added), moved=list(moved))


def _peaked(sharpness: float) -> torch.Tensor:
    """A logits row whose top token leads the rest by `sharpness` (large: a confident step)."""
    row = torch.linspace(0.0, 1.0, VOCAB)
    row[7] += sharpness
    return row


def _reported(row: torch.Tensor, k: int) -> TokenLogprob:
    """The token as vLLM reports it: top-k raw log-probs, and the sampled token (here one
    outside the top k) listed last."""
    logprobs = row.log_softmax(dim=-1)
    values, ids = logprobs.topk(k)
    top = [(int(i), "", float(v)) for i, v in zip(ids, values, strict=True)]
    return TokenLogprob(token_id=1, token="", logprob=float(logprobs[1]), top=(*top, (1, "", -9.0)))


def _step(processor: ConfidenceStopProcessor, rows: list[torch.Tensor], outputs: list[list[int]]):
    logits = torch.stack(rows).clone()
    out = processor.apply(logits)
    for output in outputs:
        output.append(3)
    return out


def _ended(row: torch.Tensor) -> bool:
    return bool(row[EOS] == 0.0 and torch.isinf(row[1:]).all())


def test_a_marked_sequence_ends_at_the_first_token_below_its_floor_as_the_strategy_reads_it():
    processor = _processor()
    output: list[int] = []
    processor.update_state(_update(added=[_added(0, "r", output)]))
    assert processor.set_floor("r", 0.0) is True
    sharpness = [9.0, 9.0, 9.0, 8.0, 0.5, 9.0]
    expected = RunningGroupConfidence(3, top_k=2)
    ended_at = None
    for position, s in enumerate(sharpness):
        row = _peaked(s)
        expected.add([_reported(row, 2)])
        if position == 3:
            # The floor between the group before the unsure step and the group with it.
            assert expected.lowest is not None
            floor = expected.lowest - 1e-6
            processor.set_floor("r", floor)
        out = _step(processor, [row], [output])
        if _ended(out[0]):
            ended_at = position
            break
        assert torch.equal(out[0], row)
    # The engine's group value is the strategy's, from the reported top-k (the sampled token
    # listed after them is not read): it ends the sequence at the same token.
    assert ended_at == 4
    lowest = processor._rows[0].group.lowest
    assert lowest is not None and lowest == expected.lowest and lowest < floor


def test_unmarked_sequences_and_other_requests_floors_are_left_alone():
    processor = _processor()
    outputs: list[list[int]] = [[], [], []]
    processor.update_state(
        _update(
            added=[
                _added(0, "r", outputs[0], window=1),
                _added(1, None, outputs[1]),
                _added(2, "other", outputs[2], window=1),
            ]
        )
    )
    processor.set_floor("r", math.inf)
    rows = [_peaked(9.0)] * 3
    out = _step(processor, rows, outputs)
    assert _ended(out[0])
    assert torch.equal(out[1], rows[1]) and torch.equal(out[2], rows[2])
    # Nothing marked at all: the logits come back as they were, untouched.
    quiet = _processor()
    logits = torch.stack(rows)
    assert quiet.apply(logits) is logits and torch.equal(logits, torch.stack(rows))


def test_state_follows_a_sequence_as_vllm_moves_it_within_the_batch():
    processor = _processor()
    a: list[int] = []
    b: list[int] = []
    processor.update_state(_update(added=[_added(0, "a", a, window=2), _added(1, "b", b)]))
    _step(processor, [_peaked(9.0), _peaked(9.0)], [a, b])
    processor.update_state(_update(moved=[(0, 1, MoveDirectionality.SWAP)]))
    processor.set_floor("a", math.inf)
    # "a" now sits at index 1; its window fills with this step's token and it ends there.
    out = _step(processor, [_peaked(9.0), _peaked(9.0)], [b, a])
    assert not _ended(out[0]) and _ended(out[1])
    # A one-way move into the slot "b" left: "a" is at 0 and alone.
    processor.update_state(_update(removed=[0], moved=[(1, 0, MoveDirectionality.UNIDIRECTIONAL)]))
    assert processor.set_floor("b", 1.0) is False and processor.set_floor("a", 9.0) is True
    assert _ended(_step(processor, [_peaked(9.0)], [a])[0])


def test_a_floor_reaches_sequences_that_join_the_batch_after_it_was_set():
    processor = _processor()
    # Under load a request's candidates wait in vLLM's queue: none is in the batch yet.
    assert processor.set_floor("r", math.inf) is False
    late: list[int] = []
    processor.update_state(_update(added=[_added(0, "r", late, window=1)]))
    assert _ended(_step(processor, [_peaked(9.0)], [late])[0])
    # The most recent floors are kept, the oldest dropped past the cap.
    for i in range(MAX_FLOORS):
        processor.set_floor(f"k{i}", 1.0)
    assert len(processor._floors) == MAX_FLOORS and "r" not in processor._floors


def test_a_prompt_in_chunks_adds_one_value_for_its_first_token():
    processor = _processor()
    output: list[int] = []
    processor.update_state(_update(added=[_added(0, "r", output, window=2)]))
    processor.set_floor("r", 2.0)
    # Two chunks of the prompt: logits are computed for each, but no token is kept from the
    # first, so its value is replaced rather than counted.
    processor.apply(torch.stack([_peaked(0.0)]))
    out = processor.apply(torch.stack([_peaked(9.0)]))
    assert not _ended(out[0])
    group = processor._rows[0].group
    only = RunningGroupConfidence(2, top_k=2)
    only.add([_reported(_peaked(9.0), 2)])
    # One value, the second's: a window of two is not full yet.
    assert group.current is None and group.lowest is None
    output.append(3)
    processor.apply(torch.stack([_peaked(9.0)]))
    only.add([_reported(_peaked(9.0), 2)])
    assert group.lowest == only.lowest is not None


def test_an_error_in_the_processor_turns_it_off_instead_of_stopping_the_engine(
    caplog: pytest.LogCaptureFixture,
) -> None:
    processor = _processor()
    output: list[int] = []
    processor.update_state(_update(added=[_added(0, "r", output, window=1)]))
    processor.set_floor("r", math.inf)
    broken = SamplingParams(extra_args={"ponder_confidence_stop": {"key": "x"}})
    processor.update_state(_update(added=[(1, broken, None, [])]))
    assert "failed and is now off" in caplog.text
    rows = torch.stack([_peaked(9.0), _peaked(9.0)])
    assert torch.equal(processor.apply(rows.clone()), rows)
    # It stays off: later requests are sampled as they would be without it.
    processor.update_state(_update(added=[_added(2, "r", [], window=1)]))
    assert not processor._rows


def test_the_worker_call_reaches_every_processor_holding_the_request():
    first, second = _processor(), _processor()
    first.update_state(_update(added=[_added(0, "r", [])]))
    second.update_state(_update(added=[_added(0, "r", [])]))
    assert ConfidenceFloorCalls().ponder_set_confidence_floor("r", 1.5) == 2
    assert ConfidenceFloorCalls().ponder_set_confidence_floor("queued", 2.5) == 0
    assert first._floors == second._floors == {"r": 1.5, "queued": 2.5}


def test_vllm_loads_the_processor_and_the_worker_extension_by_the_names_the_engine_passes():
    args = confidence_stop_args()
    assert args == {"logits_processors": [PROCESSOR], "worker_extension_cls": EXTENSION}
    assert _load_logitsprocs_by_fqcns(args["logits_processors"]) == [ConfidenceStopProcessor]
    assert resolve_obj_by_qualname(EXTENSION) is ConfidenceFloorCalls
    for marker in [stop_marker("r", 0, 2, 0), {"ponder_confidence_stop": {"key": "r"}}]:
        with pytest.raises(ValueError, match="window"):
            ConfidenceStopProcessor.validate_params(SamplingParams(extra_args=marker))
    ConfidenceStopProcessor.validate_params(SamplingParams(extra_args=stop_marker("r", 8, 2, 0)))


def test_a_vllm_without_the_interface_starts_without_the_processor(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The module fails to import where vLLM lacks custom logits processors; the engine must then
    # not be asked to load it (its core would fail to start), and strategies abort instead.
    monkeypatch.setitem(sys.modules, "ponder.server.vllm_confidence_stop", None)
    assert confidence_stop_args() == {}
