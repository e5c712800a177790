"""Sequences that need no text while they are generated are detokenized once, at the end.

vLLM detokenizes every sequence at every step in the API process, which competes with the engine
for the CPU; a request that waits for its final output with no stop strings and no log-probs gets
its texts from one batch decode instead. These drive the wrapper with a stand-in for `AsyncLLM`
(no engine is started).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

from ponder.core.engine import SamplingOptions

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from ponder.server.vllm_engine import VLLMEngine


class _CharTokenizer:
    """Token id = code point; id 0 is the special end-of-sequence token."""

    eos_token_id = 0
    backend_tokenizer = None

    def get_vocab(self) -> dict[str, int]:
        return {"a": 97}

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        return "".join(chr(i) for i in ids if i or not skip_special_tokens)


class _Collector:
    def __init__(self, output: Any) -> None:
        self.output = output

    def get_nowait(self) -> Any:
        output, self.output = self.output, None
        return output

    async def get(self) -> Any:
        raise AssertionError("the final output was already there")


class _FinalOnlyLLM:
    """Answers each request with its final output: the tokens of `completions`, and vLLM's text
    only when the request asked vLLM to detokenize."""

    def __init__(self, completions: list[str]) -> None:
        self.completions = completions
        self.params: list[Any] = []
        self.model_config = SimpleNamespace(get_vocab_size=lambda: 0x110000)
        self.vllm_config = SimpleNamespace(
            cache_config=SimpleNamespace(num_gpu_blocks=None, block_size=16),
            scheduler_config=SimpleNamespace(max_num_seqs=4),
            parallel_config=SimpleNamespace(data_parallel_size=1),
        )

    def get_tokenizer(self) -> _CharTokenizer:
        return _CharTokenizer()

    async def add_request(self, request_id: str, prompt: Any, params: Any) -> _Collector:
        self.params.append(params)
        outputs = [
            SimpleNamespace(
                index=i,
                text=text if params.detokenize else "",
                token_ids=[ord(c) for c in text],
                logprobs=None,
                cumulative_logprob=None,
                finish_reason="length",
                stop_reason=None,
            )
            for i, text in enumerate(self.completions)
        ]
        return _Collector(
            SimpleNamespace(
                outputs=outputs,
                finished=True,
                prompt_token_ids=prompt["prompt_token_ids"],
                num_cached_tokens=0,
            )
        )

    async def abort(self, ids: list[str]) -> None:
        pass


def engine(completions: list[str]) -> tuple[VLLMEngine, _FinalOnlyLLM]:
    llm = _FinalOnlyLLM(completions)
    wrapper = VLLMEngine(llm, model_name="m", max_model_len=512, on_cpu=True, max_logprobs=20)
    return wrapper, llm


async def test_final_only_sequences_get_their_text_from_one_decode_at_the_end() -> None:
    wrapper, llm = engine(["The answer is 4.", "It is 4\x00.", "4"])
    prompt = [ord(c) for c in "What is 2+2?"]
    options = SamplingOptions(max_tokens=64)
    (result,) = await wrapper.generate([prompt], options, n=3, request_id="r")
    assert llm.params[0].detokenize is False
    # The special token (id 0) is skipped, as vLLM's detokenizer skips it.
    assert [s.text for s in result.sequences] == ["The answer is 4.", "It is 4.", "4"]
    assert result.sequences[1].token_ids == tuple(ord(c) for c in "It is 4\x00.")
    # Log-probs read only for their values (a verifier's confidence) need no text either.
    wrapper, llm = engine(["4"])
    values_only = SamplingOptions(max_tokens=64, logprobs=0, logprob_texts=False)
    (result,) = await wrapper.generate([prompt], values_only, request_id="r")
    assert llm.params[0].detokenize is False and result.sequences[0].text == "4"


async def test_vllm_detokenizes_when_text_is_needed_during_generation() -> None:
    prompt = [ord(c) for c in "Q"]
    for options in (
        SamplingOptions(max_tokens=64, stop=("\n",)),  # stop strings are matched on text
        SamplingOptions(max_tokens=64, logprobs=0),  # log-probs carry their tokens' texts
        SamplingOptions(max_tokens=8),  # short requests take cumulative outputs
    ):
        wrapper, llm = engine(["4"])
        (result,) = await wrapper.generate([prompt], options, request_id="r")
        assert llm.params[0].detokenize is True
        assert result.sequences[0].text == "4"
