"""What the in-process and the remote engine share: vLLM's names for our sampling options, and
the tokenizer operations of the engine protocol.

vLLM's `SamplingParams` and the fields of its OpenAI `/v1/completions` request use the same names
for every option Ponder sends, so one mapping serves both engines (`vllm_convert.py` builds
`SamplingParams` from it, `remote_convert.py` a JSON body).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from typing import Any

from ponder.core.engine import SamplingOptions, StructuredOutput

__all__ = ["TokenizerOps", "refused_field", "sampling_fields", "structured_outputs"]

# Words of vLLM's refusals of a structured-output constraint (its grammar compilers' errors name no
# parameter): "Failed to transform json schema into a grammar", "...features not supported by
# xgrammar", "Structured outputs are not yet supported...".
_STRUCTURED_REFUSAL = ("json schema", "grammar", "structured output")


def sampling_fields(options: SamplingOptions, n: int, *, seeded: bool) -> dict[str, Any]:
    """Our options under vLLM's field names (the same in SamplingParams and the completions API)."""
    return {
        "n": n,
        "max_tokens": options.max_tokens,
        "temperature": options.temperature,
        "top_p": options.top_p,
        "top_k": max(options.top_k, 0),
        "min_p": options.min_p,
        "presence_penalty": options.presence_penalty,
        "frequency_penalty": options.frequency_penalty,
        "repetition_penalty": options.repetition_penalty,
        "stop": list(options.stop) or None,
        "logprobs": options.logprobs,
        "seed": options.seed if seeded else None,
        "min_tokens": options.min_tokens,
        "ignore_eos": options.ignore_eos,
        "include_stop_str_in_output": options.include_stop,
        "logit_bias": dict(options.logit_bias) or None,
        "structured_outputs": structured_outputs(options.structured),
    }


def structured_outputs(structured: StructuredOutput | None) -> dict[str, Any] | None:
    """vLLM's `structured_outputs` fields (its StructuredOutputsParams, or the same object in the
    completions API) for our structured-output option."""
    if structured is None:
        return None
    if structured.kind == "json_object":
        return {"json_object": True}
    return {"json": json.loads(structured.json_schema or "{}")}


def refused_field(message: str) -> str | None:
    """The request field vLLM's refusal is about, when its message says and its error does not."""
    lowered = message.lower()
    if any(words in lowered for words in _STRUCTURED_REFUSAL):
        return "response_format"
    return None


class TokenizerOps:
    """The engine protocol's tokenizer methods on a Hugging Face tokenizer in `self._tokenizer`."""

    _tokenizer: Any

    @property
    def hf_tokenizer(self) -> Any:
        """The tokenizer itself, for vLLM's reasoning parsers (`server/reasoning.py`)."""
        return self._tokenizer

    @functools.cached_property
    def max_token_chars(self) -> int:
        # Byte-level vocabularies spell each byte as one character and SentencePiece ones each
        # character as one, so no token covers more characters than its vocabulary entry has.
        return max(1, *(len(t) for t in self._tokenizer.get_vocab()))

    @functools.cached_property
    def _backend(self) -> Any:
        # The Rust tokenizer's batch call releases the GIL (its single-text call does not), so a
        # long prompt tokenised in a worker thread leaves the event loop free meanwhile.
        return getattr(self._tokenizer, "backend_tokenizer", None)

    def render_chat(
        self,
        messages: Sequence[dict[str, Any]],
        *,
        add_generation_prompt: bool = True,
        continue_final_message: bool = False,
    ) -> list[int]:
        text = self._tokenizer.apply_chat_template(
            list(messages),
            tokenize=False,
            add_generation_prompt=add_generation_prompt and not continue_final_message,
            continue_final_message=continue_final_message,
        )
        # The template already wrote the special tokens it wants.
        return self.encode(str(text))

    def encode(self, text: str) -> list[int]:
        if self._backend is not None:
            return list(self._backend.encode_batch([text], add_special_tokens=False)[0].ids)
        return list(self._tokenizer.encode(text, add_special_tokens=False))

    def decode(self, token_ids: Sequence[int]) -> str:
        return str(self._tokenizer.decode(list(token_ids), skip_special_tokens=True))
