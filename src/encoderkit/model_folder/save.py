"""Writing a model folder: Hugging Face files, encoderkit.json and the card, swapped in at once."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from encoderkit.model_folder.metadata import METADATA_FILE


def save_model(model: Any, tokenizer: Any, model_dir: Path, metadata: dict[str, Any], card: str) -> None:
    """Save in Hugging Face format (safetensors), plus encoderkit.json and a README card.

    The folder is written beside its final name and renamed into place, so `model_dir` is the
    old model or the new one, never half of one. `model` is a merged model, or a PEFT model whose
    adapter alone is saved (`metadata["adapter"]`), with the task config (labels) beside it.
    """
    tmp = model_dir.with_name(f".{model_dir.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    if hasattr(model, "peft_config"):  # an unmerged adapter: keep the task config (labels) beside it
        model.get_base_model().config.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")
    (tmp / "README.md").write_text(card, encoding="utf-8")
    shutil.rmtree(model_dir, ignore_errors=True)
    tmp.replace(model_dir)
