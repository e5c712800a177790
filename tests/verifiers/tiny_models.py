"""Tiny random-weight reward models, built and saved inside the tests.

Each is the real architecture class of its family with a handful of parameters, and a tokenizer
that holds the family's special tokens, saved to a folder and loaded through the same code path
as a real model.
"""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import (
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForSequenceClassification,
    Qwen2ForTokenClassification,
)

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIAL = ["<pad>", "<unk>", "<s>", "<|im_start|>", "<|im_end|>", "<extra_0>"]
WORDS = [
    "ки",
    "+",
    "-",
    "system",
    "user",
    "assistant",
    "what",
    "is",
    "2",
    "3",
    "5",
    "6",
    "?",
    "the",
    "answer",
    "step",
    "one",
    "two",
    "so",
    "please",
    "reason",
    "by",
    "and",
    "put",
    "your",
    "final",
    "within",
    "\\boxed{}",
    ".",
    ",",
    ":",
    "=",
    "first",
    "then",
    "add",
]


def tokenizer(folder: Path) -> PreTrainedTokenizerFast:
    vocab = {token: i for i, token in enumerate([*SPECIAL, *WORDS])}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation("isolated")]
    )
    # Like Llama's tokenizers, it starts every plain encoding with <s>.
    core.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", vocab["<s>"])]
    )
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=core,
        unk_token="<unk>",
        pad_token="<pad>",
        bos_token="<s>",
        additional_special_tokens=["<|im_start|>", "<|im_end|>", "<extra_0>"],
    )
    wrapped.chat_template = CHATML
    wrapped.save_pretrained(folder)
    return wrapped


def _small(config_class: type, vocab_size: int, **extra: object):
    return config_class(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        pad_token_id=0,
        bos_token_id=2,
        eos_token_id=4,
        **extra,
    )


def build(folder: Path, family: str, seed: int = 0) -> Path:
    """Save a tiny model of `family` into `folder`; returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    tok = tokenizer(folder)
    torch.manual_seed(seed)
    vocab = len(tok)
    if family == "qwen_prm":
        model = Qwen2ForTokenClassification(_small(Qwen2Config, vocab, num_labels=2))
    elif family == "orm":
        model = Qwen2ForSequenceClassification(_small(Qwen2Config, vocab, num_labels=1))
    else:
        model = LlamaForCausalLM(_small(LlamaConfig, vocab))
    model.save_pretrained(folder)
    return folder
