"""Load a saved model folder and predict or evaluate; shared by the CLI (and later the server)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForSequenceClassification

from encoderkit.data.columns import Columns, resolve_columns
from encoderkit.data.tables import Table, read_table
from encoderkit.errors import UserError
from encoderkit.inference.forward import forward_all
from encoderkit.modeling import load_tokenizer
from encoderkit.tasks import classification as cls
from encoderkit.training.outputs import METADATA_FILE


@dataclass
class Predictor:
    """A fine-tuned model with what it was trained with: task, columns, max_length, labels."""

    model: Any
    tokenizer: Any
    task: str
    columns: dict[str, str | None]
    max_length: int
    label_names: list[str] | None
    device: torch.device
    batch_size: int = 64

    @classmethod
    def from_dir(cls_, path: str | Path, device: str | None = None, batch_size: int = 64) -> Predictor:
        """Load `path` (a run's `model/` folder, or the run folder itself).

        Raises:
            UserError: the folder is missing or was not written by encoderkit.
        """
        path = Path(path)
        if (path / "model" / METADATA_FILE).exists():
            path = path / "model"
        meta_path = path / METADATA_FILE
        if not meta_path.exists():
            raise UserError(f"{path}: not an encoderkit model folder (no {METADATA_FILE})")
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta["task"] not in ("classification", "regression"):
            raise UserError(f"{path}: task '{meta['task']}' is not supported by this version")
        target = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        model = AutoModelForSequenceClassification.from_pretrained(path).to(target).eval()
        return cls_(
            model=model,
            tokenizer=load_tokenizer(str(path)),
            task=meta["task"],
            columns=meta["columns"],
            max_length=int(meta["max_length"]),
            label_names=meta.get("label_names"),
            device=target,
            batch_size=batch_size,
        )

    def resolve(self, table: Table, flags: dict[str, str | None], need_label: bool) -> Columns:
        """Columns from the flags, falling back to those the model was trained with, then defaults."""
        trained = self.columns

        def pick(role: str) -> str | None:
            if flags.get(role):
                return flags[role]
            name = trained.get(role)
            return name if name in table.columns else None

        return resolve_columns(table, pick("text"), pick("text_pair"), pick("label"), need_label)

    def logits(self, examples: list[cls.TextExample]) -> torch.Tensor:
        encoded = cls.tokenize(self.tokenizer, examples, self.max_length)
        pad_left = self.tokenizer.padding_side == "left"
        outputs = forward_all(
            self.model, encoded, self.batch_size, self.device, self.tokenizer.pad_token_id, pad_left
        )
        return outputs["logits"]

    def predict_texts(self, texts: list[str], pairs: list[str] | None = None) -> list[dict[str, Any]]:
        """Predict raw strings (the Python API): one dict per text."""
        examples = [
            cls.TextExample(t, pairs[i] if pairs else None, None, f"input[{i}]") for i, t in enumerate(texts)
        ]
        return cls.format_predictions(self.logits(examples), self.label_names)

    def predict_file(self, source: str, flags: dict[str, str | None]) -> list[dict[str, Any]]:
        """Predict every row of a file; rows keep their `id` column when there is one."""
        table = read_table(source)
        columns = self.resolve(table, flags, need_label=False)
        examples = cls.read_examples(table, Columns(columns.text, columns.text_pair, None), need_label=False)
        predictions = cls.format_predictions(self.logits(examples), self.label_names)
        if "id" in table.columns:
            predictions = [{"id": row.get("id"), **p} for row, p in zip(table.rows, predictions, strict=True)]
        return predictions

    def evaluate_file(self, source: str, flags: dict[str, str | None]) -> dict[str, float]:
        """Metrics on a labelled file, exactly as training computed them on its eval set."""
        table = read_table(source)
        columns = self.resolve(table, flags, need_label=True)
        examples = cls.read_examples(table, columns, need_label=True)
        targets = (
            cls.label_ids(examples, self.label_names)
            if self.label_names
            else cls.regression_targets(examples)
        )
        result = cls.evaluate_logits(self.logits(examples), targets, self.label_names)
        return {**result.metrics, "examples": len(examples)}
