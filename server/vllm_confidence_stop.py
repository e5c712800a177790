"""DeepConf's early stop inside vLLM's engine core: a sequence ends at the first token whose group
confidence falls below a floor, with no lag.

Stopping a trace from this process reaches the engine core tokens late: the tokens arrive some
steps after they were sampled, and the abort takes more steps back (on the CPU a stopped trace
still made 4-5 tokens, which kept DeepConf online just over half of self-consistency@16's tokens;
on an H200 the lag was far longer, docs/results/heldout/). Here the decision is taken where the
tokens are sampled: a vLLM logits processor computes each marked sequence's token confidence from
the same distribution its reported log-probs come from (the top-k of the raw log-softmax), keeps
the sliding group mean with `RunningGroupConfidence`, the same code the strategy reads the
reported log-probs with, and once the group is below the floor it leaves the sequence only its
end-of-sequence token to sample.

The floor is known only once the warm-up traces end, after the others started, so it reaches the
workers by vLLM's `collective_rpc` into a worker extension (`ConfidenceFloorCalls`), keyed by the
request the candidates belong to. Requests without the marker cost the processor nothing.
"""

from __future__ import annotations

import logging
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from vllm.v1.sample.logits_processor import BatchUpdate, LogitsProcessor, MoveDirectionality

from ponder.core.confidence import RunningGroupConfidence, top_confidence

if TYPE_CHECKING:
    from vllm import SamplingParams
    from vllm.config import VllmConfig

__all__ = [
    "EXTENSION",
    "FLOOR_METHOD",
    "MAX_FLOORS",
    "PROCESSOR",
    "ConfidenceFloorCalls",
    "ConfidenceStopProcessor",
    "stop_marker",
]

# How vLLM loads them, in its engine core and workers.
PROCESSOR = "ponder.server.vllm_confidence_stop:ConfidenceStopProcessor"
EXTENSION = "ponder.server.vllm_confidence_stop.ConfidenceFloorCalls"
FLOOR_METHOD = "ponder_set_confidence_floor"
_EXTRA_ARG = "ponder_confidence_stop"
# Floors kept per processor (a float each): far more than the requests a server runs at once.
MAX_FLOORS = 4096

logger = logging.getLogger(__name__)

# The processors of this worker process, which the floor calls reach.
_processors: weakref.WeakSet[ConfidenceStopProcessor] = weakref.WeakSet()


def stop_marker(key: str, window: int, top_k: int, stop_token: int) -> dict[str, Any]:
    """`SamplingParams.extra_args` that put a request under the processor: its group confidence
    over `window` tokens from the top `top_k` log-probs, its floor set for `key`, and the token
    that ends it."""
    return {_EXTRA_ARG: {"key": key, "window": window, "top_k": top_k, "stop": stop_token}}


@dataclass
class _Tracked:
    key: str
    top_k: int
    stop_token: int
    output: list[int]
    group: RunningGroupConfidence
    # Tokens generated when the group was last updated. A step that samples nothing for the
    # sequence is a chunk of its prompt (vLLM counts placeholders for tokens in flight), before
    # its first token: that value is replaced, not added.
    seen: int = -1

    def add(self, value: float) -> None:
        at = len(self.output)
        if at == self.seen:
            self.group = RunningGroupConfidence(self.group.window)
        self.seen = at
        self.group.add_value(value)


class ConfidenceStopProcessor(LogitsProcessor):
    """Ends a marked sequence (`stop_marker`) once its group confidence is below its floor."""

    def __init__(self, vllm_config: VllmConfig, device: torch.device, is_pin_memory: bool) -> None:
        self._rows: dict[int, _Tracked] = {}
        self._floors: OrderedDict[str, float] = OrderedDict()
        self._failed = False
        _processors.add(self)

    @classmethod
    def validate_params(cls, sampling_params: SamplingParams) -> None:
        spec = (sampling_params.extra_args or {}).get(_EXTRA_ARG)
        if spec is None:
            return
        try:
            valid = int(spec["window"]) >= 1 and int(spec["top_k"]) >= 1 and "key" in spec
            int(spec["stop"])
        except (KeyError, TypeError, ValueError):
            valid = False
        if not valid:
            raise ValueError(
                f"{_EXTRA_ARG} needs a key, a stop token, and a window and top_k of 1 or more"
            )

    def is_argmax_invariant(self) -> bool:
        return False

    def set_floor(self, key: str, floor: float) -> bool:
        """Stop `key`'s sequences below `floor`, those in the batch and those that join it
        later (under load some wait in the scheduler's queue, or leave it when preempted and
        come back); says whether any is in the batch now. The most recent floors are kept:
        request keys are never reused, and a few thousand cover every request in flight."""
        self._floors[key] = floor
        self._floors.move_to_end(key)
        while len(self._floors) > MAX_FLOORS:
            self._floors.popitem(last=False)
        return any(t.key == key for t in self._rows.values())

    def _fail(self) -> None:
        """An error here would stop the engine for every request: log it, track nothing more,
        and leave DeepConf's stops to the strategy's aborts."""
        logger.exception("the confidence-stop logits processor failed and is now off")
        self._failed = True
        self._rows.clear()

    def update_state(self, batch_update: BatchUpdate | None) -> None:
        if batch_update is None or self._failed:
            return
        try:
            self._update(batch_update)
        except Exception:
            self._fail()

    def _update(self, batch_update: BatchUpdate) -> None:
        for index in batch_update.removed:
            self._rows.pop(index, None)
        # (index, params, [prompt ids,] output ids): older vLLMs have no prompt ids.
        for added in batch_update.added:
            index, params, output = added[0], added[1], added[-1]
            self._rows.pop(index, None)
            spec = (params.extra_args or {}).get(_EXTRA_ARG) if params is not None else None
            if spec is not None:
                self._rows[index] = _Tracked(
                    key=str(spec["key"]),
                    top_k=int(spec["top_k"]),
                    stop_token=int(spec["stop"]),
                    output=output,
                    group=RunningGroupConfidence(int(spec["window"])),
                )
        for a, b, direction in batch_update.moved:
            first, second = self._rows.pop(a, None), self._rows.pop(b, None)
            if first is not None:
                self._rows[b] = first
            if second is not None and direction == MoveDirectionality.SWAP:
                self._rows[a] = second

    def apply(self, logits: torch.Tensor) -> torch.Tensor:
        if not self._rows:
            return logits
        try:
            return self._apply(logits)
        except Exception:
            self._fail()
            return logits

    def _apply(self, logits: torch.Tensor) -> torch.Tensor:
        indices = [i for i in self._rows if i < logits.shape[0]]
        if not indices:
            return logits
        k = max(self._rows[i].top_k for i in indices)
        # The same numbers vLLM reports as the raw log-probs: log-softmax of the model's logits
        # in float32, best first. On one CPU thread this costs about 0.4 ms per row of a
        # 49,152-token vocabulary; copying the rows out first cost a third more, so a batch whose
        # every row is tracked is read in place.
        if len(indices) == logits.shape[0]:
            indices.sort()
            rows = logits
        else:
            rows = logits.index_select(0, torch.tensor(indices, device=logits.device))
        best = rows.log_softmax(dim=-1).topk(k, dim=-1).values.tolist()
        ending = []
        for index, values in zip(indices, best, strict=True):
            tracked = self._rows[index]
            tracked.add(top_confidence(values[: tracked.top_k]))
            floor = self._floors.get(tracked.key)
            lowest = tracked.group.lowest
            if floor is not None and lowest is not None and lowest < floor:
                ending.append((index, tracked.stop_token))
        for index, token in ending:
            logits[index] = float("-inf")
            logits[index, token] = 0.0
        return logits


class ConfidenceFloorCalls:
    """A vLLM worker extension: the call that sets a floor in this worker's processors."""

    def ponder_set_confidence_floor(self, key: str, floor: float) -> int:
        """Set `key`'s floor; returns how many processors hold sequences of it."""
        return sum(processor.set_floor(key, floor) for processor in list(_processors))
