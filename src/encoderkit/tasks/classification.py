"""Sequence classification (single sentence or pair, any number of labels) and regression.

Labels may be strings or integers. Label names are sorted (numerically when every label is an
integer), so `0..K-1` keep their ids and, for two classes, the second name is the positive class
of the binary F1 (`1`, `positive`, `yes`). The names are stored in the model config.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np
import torch
from sklearn.utils.class_weight import compute_class_weight

from encoderkit.config import read_yaml_mapping
from encoderkit.data.columns import Columns
from encoderkit.data.tables import Table
from encoderkit.data.text_checks import check_text
from encoderkit.errors import UserError, brief
from encoderkit.evaluation.metrics import classification_metrics, confusion, regression_metrics
from encoderkit.features.encoded import Encoded


@dataclass(frozen=True)
class TextExample:
    text: str
    text_pair: str | None
    label: Any  # raw value from the file; None for unlabelled input
    where: str  # `file:line`, for error messages


def read_examples(table: Table, columns: Columns, need_label: bool) -> list[TextExample]:
    """Pull text, pair and label out of each row, rejecting empty texts and missing labels."""
    if not table.rows:
        raise UserError(f"{table.source}: no examples")
    examples = []
    for i, row in enumerate(table.rows):
        where = table.where(i)
        text = _text(row.get(columns.text), columns.text, where)
        pair = _text(row.get(columns.text_pair), columns.text_pair, where) if columns.text_pair else None
        label = row.get(columns.label) if columns.label else None
        if need_label and (label is None or (isinstance(label, str) and not label.strip())):
            raise UserError(f"{where}: missing label in column '{columns.label}'")
        examples.append(TextExample(text, pair, label, where))
    return examples


def _text(value: Any, column: str | None, where: str) -> str:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise UserError(f"{where}: empty text in column '{column}'")
    if not isinstance(value, str):
        raise UserError(f"{where}: column '{column}' holds a {type(value).__name__}, expected text")
    return check_text(value, f"{where}: column '{column}'")


def label_key(raw: Any, where: str) -> str:
    """One spelling per label: 1, 1.0 and "1" are the same label; lists and dicts are errors."""
    if raw is None or isinstance(raw, bool | list | dict):
        raise UserError(f"{where}: label {brief(raw)} must be a single string or integer")
    if isinstance(raw, float):
        if not math.isfinite(raw):
            raise UserError(
                f"{where}: label {raw!r} is not a class label (use --task regression for numbers)"
            )
        if not raw.is_integer():
            raise UserError(f"{where}: label {raw!r} is fractional; use --task regression for numbers")
        return str(int(raw))
    text = str(raw).strip()
    if isinstance(raw, str) and _INTEGRAL.fullmatch(text):
        return _integer_spelling(text)  # CSV cells "1", "01" and "1.0" are the same label
    return text


_INTEGRAL = re.compile(r"-?[0-9]+(\.0*)?")


def _integer_spelling(text: str) -> str:
    """The digits of an integral string without sign noise, leading zeros or ".0": "-01.0" -> "-1".

    Done on the string, not through float() or int(): float rounds past 2**53 (two different
    20-digit labels would merge) and int() refuses strings over 4300 digits.
    """
    negative = text.startswith("-")
    digits = text.removeprefix("-").split(".")[0].lstrip("0") or "0"
    return f"-{digits}" if negative and digits != "0" else digits


def label_names_from(examples: list[TextExample]) -> list[str]:
    keys = {label_key(e.label, e.where) for e in examples}
    if len(keys) < 2:
        raise UserError(
            f"{examples[0].where.split(':')[0]}: classification needs at least 2 labels, found {brief(keys)}"
        )
    if all(_is_int(k) for k in keys):
        return sorted(keys, key=Decimal)  # not int: it refuses over 4300 digits, Decimal does not
    return sorted(keys)


def _is_int(text: str) -> bool:
    return re.fullmatch(r"-?[0-9]+", text) is not None


def label_ids(examples: list[TextExample], names: list[str]) -> list[int]:
    index = {name: i for i, name in enumerate(names)}
    ids = []
    for e in examples:
        key = label_key(e.label, e.where)
        if key not in index:
            known = brief(names, 200)
            raise UserError(
                f"{e.where}: label {brief(key)} never appears in the training data (labels: {known})"
            )
        ids.append(index[key])
    return ids


def class_weights(spec: str, names: list[str], ids: list[int]) -> list[float]:
    """`--class-weights`: one loss weight per class, scaled so the average training example
    weighs 1 (the loss keeps its scale, so the learning rate still fits; the ratios are the spec's).

    `balanced` is scikit-learn's n / (classes x count): each class contributes equally to the loss.
    A file (YAML or JSON) maps label names to positive weights; a label it does not name weighs 1.

    Raises:
        UserError: the file is missing or malformed, names an unknown label or a weight <= 0.
    """
    counts = np.bincount(ids, minlength=len(names))
    if spec == "balanced":
        raw = compute_class_weight("balanced", classes=np.arange(len(names)), y=np.asarray(ids))
    else:
        given = _weights_file(spec, names)
        raw = np.asarray([given.get(name, 1.0) for name in names])
    scale = len(ids) / float(np.dot(raw, counts))
    return [float(w * scale) for w in raw]


def _weights_file(path: str, names: list[str]) -> dict[str, float]:
    data = read_yaml_mapping(path, "class weights file", "label: weight")
    if not data:
        raise UserError(f"{path}: no class weights (a mapping of label: weight)")
    weights = {}
    for raw_label, weight in data.items():
        label = label_key(raw_label, path)
        if label not in names:
            raise UserError(
                f"{path}: label {brief(label)} is not a training label (labels: {brief(names, 200)})"
            )
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0 < weight < math.inf:
            raise UserError(
                f"{path}: weight of label {brief(label)} must be a number > 0, got {brief(weight)}"
            )
        weights[label] = float(weight)
    return weights


def regression_targets(examples: list[TextExample]) -> list[float]:
    return [_target(e.label, e.where) for e in examples]


def _target(raw: Any, where: str) -> float:
    """A finite float from a number or a numeric string."""
    if isinstance(raw, bool):  # float(True) is 1.0, but a boolean is a class label, not a measurement
        raise UserError(f"{where}: regression target {raw!r} is not a number")
    try:
        value = float(raw)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an int beyond the float range
        raise UserError(f"{where}: regression target {brief(raw)} is not a number") from None
    if not math.isfinite(value):
        raise UserError(f"{where}: regression target {brief(raw)} is not finite")
    return value


def tokenize(tokenizer: Any, examples: list[TextExample], max_length: int | None) -> Encoded:
    """Tokenize without padding (batches pad dynamically); max_length None means no truncation."""
    texts = [e.text for e in examples]
    pairs = [e.text_pair or "" for e in examples] if examples[0].text_pair is not None else None
    enc = tokenizer(
        texts,
        pairs,
        truncation=max_length is not None,
        max_length=max_length,
        return_attention_mask=False,
        return_token_type_ids=None,
    )
    return Encoded(enc["input_ids"], enc.get("token_type_ids"))


def with_targets(encoded: Encoded, examples: list[TextExample], label_names: list[str] | None) -> Encoded:
    """Attach `labels`: class ids for classification (label_names given), floats for regression."""
    labels: list[Any] = label_ids(examples, label_names) if label_names else regression_targets(examples)
    encoded.targets = {"labels": labels}
    return encoded


@dataclass
class EvalResult:
    metrics: dict[str, float]
    confusion: list[list[int]] | None = None


def evaluate_logits(logits: torch.Tensor, targets: list, label_names: list[str] | None) -> EvalResult:
    """Metrics from model outputs [N, num_labels] against the gold targets."""
    y_true = np.asarray(targets)
    if label_names is None:
        return EvalResult(regression_metrics(y_true.astype(float), logits[:, 0].float().numpy()))
    y_pred = logits.argmax(-1).numpy()
    k = len(label_names)
    return EvalResult(classification_metrics(y_true, y_pred, k), confusion(y_true, y_pred, k))


def format_predictions(logits: torch.Tensor, label_names: list[str] | None) -> list[dict[str, Any]]:
    """One JSON-ready dict per input: label id, label name and probabilities (or a score)."""
    if label_names is None:
        return [{"score": float(v)} for v in logits[:, 0].float().tolist()]
    probs = torch.softmax(logits.float(), dim=-1)
    out = []
    for row in probs.tolist():
        best = max(range(len(row)), key=row.__getitem__)
        out.append(
            {
                "label": best,
                "label_name": label_names[best],
                "probabilities": {name: round(p, 6) for name, p in zip(label_names, row, strict=True)},
            }
        )
    return out
