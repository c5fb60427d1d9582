"""encoderkit.json: what a Predictor needs besides the Hugging Face files, and its checks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from encoderkit.errors import UserError
from encoderkit.version import __version__

METADATA_FILE = "encoderkit.json"


def model_metadata(
    task: str, base_model: str, columns: dict[str, str | None], max_length: int,
    label_names: list[str] | None, strategy: str, adapter: bool, settings: dict[str, Any],
) -> dict[str, Any]:  # fmt: skip
    """The metadata of a trained model; `settings` are the task's decoding settings.

    `adapter`: model/ holds only an unmerged LoRA adapter, loaded on top of `base_model`.
    """
    return {
        "encoderkit_version": __version__,
        "task": task,
        "base_model": base_model,
        "columns": columns,
        "max_length": max_length,
        "label_names": label_names,
        "strategy": strategy,
        "adapter": adapter,
        **settings,
    }


# The fields every folder must have, with the types they must hold; the task's own settings are
# read (and type-checked by use) by the task's decoder.
_REQUIRED: dict[str, tuple[type, ...]] = {"task": (str,), "max_length": (int,)}
_OPTIONAL: dict[str, tuple[type, ...]] = {
    "base_model": (str,),
    "columns": (dict,),
    "label_names": (list,),
    "adapter": (bool,),
}


def read_metadata(folder: Path) -> dict[str, Any]:
    """The folder's encoderkit.json, checked.

    Raises:
        UserError: missing, unreadable, not a JSON object, or a field of the wrong type.
    """
    path = folder / METADATA_FILE
    if not path.is_file():
        raise UserError(f"{folder}: not an encoderkit model folder (no {METADATA_FILE})")
    meta = read_json_object(path, "encoderkit's model metadata")
    for name in _REQUIRED:
        if name not in meta:
            raise UserError(f"{path}: field '{name}' is missing")
    for name, types in {**_REQUIRED, **_OPTIONAL}.items():
        value = meta.get(name)
        # bool is an int to isinstance: `"max_length": true` must not pass as 1.
        wrong = not isinstance(value, types) or (isinstance(value, bool) and bool not in types)
        if value is not None and wrong:
            got, expected = type(value).__name__, types[0].__name__
            raise UserError(f"{path}: field '{name}' holds a {got}, expected {expected}")
    if meta["max_length"] < 1:
        raise UserError(f"{path}: field 'max_length' must be a positive integer, got {meta['max_length']}")
    names = meta.get("label_names")
    if names is not None and not all(isinstance(n, str) for n in names):
        raise UserError(f"{path}: field 'label_names' must be a list of strings")
    return meta


def read_json_object(path: Path, what: str) -> dict[str, Any]:
    """A JSON object file of a model folder (`what` it is, for the message).

    Raises:
        UserError: missing, unreadable, not JSON, or not an object; naming the file (and line).
    """
    if not path.is_file():
        raise UserError(f"{path}: missing ({what})")
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read it ({getattr(exc, 'strerror', None) or exc})") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    if not isinstance(value, dict):
        raise UserError(f"{path}: expected a JSON object ({what}), got {type(value).__name__}")
    return value
