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
    PreTrainedModel,
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


def _vllm_sized(config):
    """vLLM's CPU attention kernels need a head size of at least 32; these use 64."""
    config.update(
        {
            "hidden_size": 128,
            "intermediate_size": 128,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "head_dim": 64,
        }
    )
    return config


def build(folder: Path, family: str, seed: int = 0, *, vllm_sized: bool = False) -> Path:
    """Save a tiny model of `family` into `folder`; returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    tok = tokenizer(folder)
    torch.manual_seed(seed)
    vocab = len(tok)
    if family == "qwen_prm":
        model: PreTrainedModel = Qwen2ForTokenClassification(
            _small(Qwen2Config, vocab, num_labels=2)
        )
    elif family == "orm":
        config = _small(Qwen2Config, vocab, num_labels=1)
        model = Qwen2ForSequenceClassification(_vllm_sized(config) if vllm_sized else config)
    else:
        model = LlamaForCausalLM(_small(LlamaConfig, vocab))
    model.save_pretrained(folder)
    return folder


def build_process_reward_model(folder: Path, seed: int = 0) -> Path:
    """A tiny `Qwen2ForProcessRewardModel` (Qwen2.5-Math-PRM's layout, which vLLM implements):
    a Qwen2 body and a two-layer head. Head size 64, which vLLM's CPU attention supports."""
    from safetensors.torch import save_file
    from transformers import Qwen2Model

    folder.mkdir(parents=True, exist_ok=True)
    tok = tokenizer(folder)
    torch.manual_seed(seed)
    config = _vllm_sized(_small(Qwen2Config, len(tok), num_labels=2))
    config.architectures = ["Qwen2ForProcessRewardModel"]
    weights = {f"model.{k}": v for k, v in Qwen2Model(config).state_dict().items()}
    hidden = config.hidden_size
    weights["score.0.weight"] = torch.randn(hidden, hidden) * 0.2
    weights["score.0.bias"] = torch.randn(hidden) * 0.2
    weights["score.2.weight"] = torch.randn(2, hidden) * 0.2
    weights["score.2.bias"] = torch.randn(2) * 0.2
    save_file({k: v.contiguous() for k, v in weights.items()}, str(folder / "model.safetensors"))
    config.save_pretrained(folder)
    return folder


def process_reward_logits(folder: Path, ids: list[int]) -> torch.Tensor:
    """The reference forward pass of `build_process_reward_model`'s model, written out here."""
    from safetensors.torch import load_file
    from transformers import Qwen2Model

    weights = load_file(str(folder / "model.safetensors"))
    body = Qwen2Model(Qwen2Config.from_pretrained(folder))
    body.load_state_dict(
        {k[len("model.") :]: v for k, v in weights.items() if k.startswith("model.")}
    )
    with torch.no_grad():
        hidden = body.eval()(input_ids=torch.tensor([ids])).last_hidden_state[0]
        inner = torch.relu(hidden @ weights["score.0.weight"].T + weights["score.0.bias"])
        return inner @ weights["score.2.weight"].T + weights["score.2.bias"]
