"""Reading a model folder for inference, every file checked before it is used.

A damaged or foreign folder ends in one UserError naming the file and what is wrong with it,
never in a traceback from deep inside transformers. Weights load from safetensors only (a
pickled `pytorch_model.bin` can run code when unpickled) and no code from the folder runs
(`trust_remote_code` stays off).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from encoderkit.errors import UserError
from encoderkit.model_folder.metadata import METADATA_FILE, read_json_object, read_metadata
from encoderkit.modeling import load_tokenizer, resolve_model

WEIGHTS = "model.safetensors"
SHARDED_INDEX = "model.safetensors.index.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"


def find_folder(path: str | Path) -> Path:
    """The model folder at `path`: a run's `model/` folder, or the run folder itself.

    Raises:
        UserError: the path does not exist, or holds no encoderkit model.
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: does not exist")
    if (path / "model" / METADATA_FILE).exists():
        return path / "model"
    if not path.is_dir():
        raise UserError(f"{path}: not a folder (expected a model folder with {METADATA_FILE})")
    return path


def check_safetensors(path: Path) -> None:
    """The file holds a complete safetensors archive (its header parses and the data is all there)."""
    from safetensors import safe_open

    if not path.is_file():
        raise UserError(f"{path}: missing (the model weights)")
    try:
        with safe_open(str(path), framework="pt") as archive:
            for key in archive.keys():  # noqa: SIM118 - safe_open has keys(), not iteration
                archive.get_slice(key)
    except Exception as exc:  # safetensors raises its own error types for every malformed header
        raise UserError(f"{path}: not a valid safetensors file ({_first_line(exc)})") from None


def weight_files(folder: Path, adapter: bool) -> list[Path]:
    """The safetensors files the folder's model loads from (checked)."""
    if adapter:
        read_json_object(folder / ADAPTER_CONFIG, "the LoRA adapter config")
        files = [folder / ADAPTER_WEIGHTS]
    elif (folder / SHARDED_INDEX).exists():
        index = read_json_object(folder / SHARDED_INDEX, "the index of the weight shards")
        shards = index.get("weight_map")
        if not isinstance(shards, dict) or not shards:
            raise UserError(f"{folder / SHARDED_INDEX}: field 'weight_map' must be a non-empty object")
        files = [folder / str(name) for name in sorted(set(shards.values()))]
    else:
        if not (folder / WEIGHTS).exists() and any(folder.glob("*.bin")):
            raise UserError(
                f"{folder}: weights are a pickled .bin file, which encoderkit does not load (it can run "
                f"code); re-save the model with safetensors (save_pretrained(..., safe_serialization=True))"
            )
        files = [folder / WEIGHTS]
    for file in files:
        check_safetensors(file)
    return files


def load_model(folder: Path, model_class: Any, meta: dict[str, Any]) -> Any:
    """The saved model (fp32, on the CPU), or for a `--no-merge` LoRA folder base model + adapter, merged.

    Raises:
        UserError: a file of the folder is missing or damaged, or does not fit the config.
    """
    config = _load_config(folder)
    files = weight_files(folder, bool(meta.get("adapter")))
    try:
        if not meta.get("adapter"):
            return model_class.from_pretrained(folder, config=config, use_safetensors=True)
        from peft import PeftModel

        base_name = resolve_model(str(meta.get("base_model")))
        base = model_class.from_pretrained(
            base_name, config=config, dtype=torch.float32, use_safetensors=True
        )
        return PeftModel.from_pretrained(base, folder).merge_and_unload()
    except UserError:
        raise
    except Exception as exc:  # shapes that do not fit the config, a dtype torch lacks, ...
        raise UserError(f"{files[0]}: the weights do not load into this model ({_first_line(exc)})") from None


def load_folder_tokenizer(folder: Path) -> Any:
    """The folder's tokenizer; UserError naming the folder's tokenizer files when they do not load."""
    try:
        return load_tokenizer(str(folder))
    except UserError:
        raise
    except Exception as exc:  # a malformed tokenizer.json raises from the Rust side
        names = sorted(p.name for p in folder.glob("*token*")) or ["no tokenizer files"]
        raise UserError(
            f"{folder}: the tokenizer ({', '.join(names)}) does not load ({_first_line(exc)})"
        ) from None


def read_folder(path: str | Path) -> tuple[Path, dict[str, Any]]:
    """(the model folder, its checked encoderkit.json)."""
    folder = find_folder(path)
    return folder, read_metadata(folder)


def _load_config(folder: Path) -> Any:
    from transformers import AutoConfig

    values = read_json_object(folder / "config.json", "the model config")
    if not isinstance(values.get("model_type"), str):
        raise UserError(f"{folder / 'config.json'}: field 'model_type' is missing or not a string")
    try:
        return AutoConfig.from_pretrained(folder)
    except Exception as exc:  # an unknown model_type, a field of the wrong type, ...
        raise UserError(f"{folder / 'config.json'}: not a usable model config ({_first_line(exc)})") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__
