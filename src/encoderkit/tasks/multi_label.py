"""Multi-label classification: any number of labels per text (or pair), one sigmoid per label.

What a user of HF's `problem_type="multi_label_classification"` expects: labels as a JSON list
(`["sport", "politics"]`, `[]` for none) or a column's text split on `--label-separator`; one
independent yes/no per label trained with binary cross-entropy; a label is predicted when its
probability reaches its threshold (0.5, or tuned per label on the eval set with
`--multi-label-threshold tune`); micro and macro F1 and subset accuracy (every label right).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, Field

from encoderkit.config import TrainConfig
from encoderkit.data.columns import Columns
from encoderkit.data.tables import Table, read_table
from encoderkit.errors import UserError, brief
from encoderkit.evaluation.metrics import multi_label_metrics, per_label_scores
from encoderkit.features.encoded import Encoded
from encoderkit.model_folder.card import CardText
from encoderkit.registry import TaskEntry
from encoderkit.reporting.formats import html_table
from encoderkit.reporting.markdown import md_table
from encoderkit.tasks import classification as cls
from encoderkit.tasks.base import Evaluation, LoadedModel, Outputs, PreparedData, label_maps
from encoderkit.tasks.schemas import Id
from encoderkit.tasks.sequence import SequenceTask, resolve

DEFAULT_THRESHOLD = 0.5


class MultiLabelOutput(BaseModel):
    id: Id = None
    labels: list[str] = Field(description="every label whose probability reaches its threshold")
    probabilities: dict[str, float]


class MultiLabelResponse(BaseModel):
    task: str
    predictions: list[MultiLabelOutput]


# Pure parts -------------------------------------------------------------------------------------


def label_set(raw: Any, separator: str | None, where: str) -> list[str]:
    """One example's labels, each spelled as `classification.label_key` spells a class.

    A JSON list is taken as it is; a string is split on `separator` (whole, without one); an
    empty list, or an empty cell with a separator, is an example with no label.
    """
    if raw is None:
        raise UserError(f'{where}: missing labels (a list such as ["a", "b"], or [] for none)')
    if isinstance(raw, list):
        items = raw
    elif isinstance(raw, str) and separator is not None:
        items = [part for part in raw.split(separator) if part.strip()]
    elif isinstance(raw, str) and not raw.strip():
        raise UserError(f"{where}: missing labels (an empty cell is no label only with --label-separator)")
    else:
        items = [raw]
    return sorted({cls.label_key(item.strip() if isinstance(item, str) else item, where) for item in items})


def names_from(sets: list[list[str]], source: str) -> list[str]:
    names = sorted({name for labels in sets for name in labels})
    if len(names) < 2:
        hint = " (is --label-separator right?)" if len(names) == 1 and any(len(s) for s in sets) else ""
        raise UserError(
            f"{source}: multi-label classification needs at least 2 labels, found {brief(names)}{hint}"
        )
    return names


def indicator(sets: list[list[str]], names: list[str], wheres: list[str]) -> list[tuple[float, ...]]:
    """One 0/1 vector per example. A tuple, not a list: the collator reads lists as one label per
    token, a tuple as one row of a [batch, labels] target."""
    index = {name: i for i, name in enumerate(names)}
    rows = []
    for labels, where in zip(sets, wheres, strict=True):
        unknown = next((name for name in labels if name not in index), None)
        if unknown is not None:
            known = brief(names, 200)
            raise UserError(
                f"{where}: label {brief(unknown)} never appears in the training data (labels: {known})"
            )
        row = [0.0] * len(names)
        for name in labels:
            row[index[name]] = 1.0
        rows.append(tuple(row))
    return rows


def tune_thresholds(probs: np.ndarray, gold: np.ndarray) -> list[float]:
    """Per label, the threshold that maximises that label's F1 on (probs, gold), both [N, K]: the
    midpoint between the last probability predicted positive and the next one. A label with no
    positive example keeps 0.5 (no threshold scores it better)."""
    thresholds = []
    for j in range(probs.shape[1]):
        p, y = probs[:, j], gold[:, j]
        if y.sum() == 0:
            thresholds.append(DEFAULT_THRESHOLD)
            continue
        order = np.argsort(-p, kind="stable")
        sorted_p = p[order]
        true_positives = np.cumsum(y[order])  # predicting the top m positive, m = 1..N
        predicted = np.arange(1, len(p) + 1)
        f1 = 2 * true_positives / (predicted + y.sum())
        f1[:-1][sorted_p[:-1] == sorted_p[1:]] = -1  # a cut between equal probabilities is not one
        m = int(np.argmax(f1)) + 1
        below = sorted_p[m] if m < len(p) else 0.0
        thresholds.append(float((sorted_p[m - 1] + below) / 2))
    return thresholds


def decide(probs: np.ndarray, thresholds: list[float]) -> np.ndarray:
    return probs >= np.asarray(thresholds)[None, :]


def thresholds_of(settings: dict[str, Any], count: int) -> list[float]:
    """The thresholds a saved model (or a run) decides with: tuned ones, else the fixed value."""
    tuned = settings.get("thresholds")
    if tuned:
        return [float(t) for t in tuned]
    fixed = settings.get("threshold", DEFAULT_THRESHOLD)
    return [float(fixed if fixed != "tune" else DEFAULT_THRESHOLD)] * count


def format_predictions(probs: np.ndarray, names: list[str], thresholds: list[float]) -> list[dict[str, Any]]:
    chosen = decide(probs, thresholds)
    return [
        {
            "labels": [name for name, on in zip(names, row_on, strict=True) if on],
            "probabilities": {name: round(float(p), 6) for name, p in zip(names, row, strict=True)},
        }
        for row, row_on in zip(probs, chosen, strict=True)
    ]


# The task ---------------------------------------------------------------------------------------


class MultiLabelTask(SequenceTask):
    """Single texts or pairs with a set of labels each; shares reading and tokenizing with
    `SequenceTask`, and changes the targets, the head, the loss and the decoding."""

    response_body = MultiLabelResponse  # type: ignore[assignment]  # (its own outputs, same request)
    prepare_fields = (*SequenceTask.prepare_fields, "label_separator")  # type: ignore[assignment]

    def __init__(self, entry: TaskEntry) -> None:
        super().__init__(entry)
        self.card = CardText(
            pipeline_tag="text-classification",
            auto_class="AutoModelForSequenceClassification",
            phrase="multi-label text classification (one sigmoid per label)",
            example_call='inputs = tokenizer("An example sentence.", return_tensors="pt")',
        )

    def read_examples(self, config: TrainConfig, table: Table, columns: Columns) -> list[cls.TextExample]:
        examples = cls.read_examples(table, columns, need_label=False)
        for e in examples:  # every label set readable before anything is tokenized
            label_set(e.label, config.label_separator, e.where)
        return examples

    def label_names(self, config: TrainConfig, train: list[cls.TextExample]) -> list[str] | None:
        return names_from(
            [label_set(e.label, config.label_separator, e.where) for e in train], str(config.train)
        )

    def strata(self, train: list[cls.TextExample]) -> list[str] | None:
        return None  # scikit-learn has no stratified split of label sets: a plain hold-out

    def with_targets(
        self, config: TrainConfig, encoded: Encoded, examples: list[cls.TextExample], names: list[str] | None
    ) -> Encoded:
        assert names is not None
        sets = [label_set(e.label, config.label_separator, e.where) for e in examples]
        encoded.targets = {"labels": indicator(sets, names, [e.where for e in examples])}
        return encoded

    def model_config(self, data: PreparedData) -> dict[str, Any]:
        names = data.label_names or []
        return {**label_maps(names), "problem_type": "multi_label_classification"}

    def loss(self, logits: Outputs, targets: Outputs, pad: torch.Tensor | None) -> torch.Tensor:
        """Binary cross-entropy over every (example, label), as HF's multi-label head computes it."""
        return F.binary_cross_entropy_with_logits(logits["logits"].float(), targets["labels"].float())

    def decoding(self, config: TrainConfig, data: PreparedData) -> dict[str, Any]:
        return {"threshold": config.multi_label_threshold, "label_separator": config.label_separator}

    def evaluate(self, outputs: Outputs, data: PreparedData, decoding: dict[str, Any]) -> Evaluation:
        """Metrics at the fixed threshold (what selects the best checkpoint); with `tune`, also the
        per-label thresholds that would score best here and the metrics at them."""
        names = data.label_names or []
        probs = torch.sigmoid(outputs["logits"].float()).numpy()
        gold = np.asarray(data.eval_gold, dtype=float)
        fixed = thresholds_of({"threshold": decoding["threshold"]}, len(names))
        metrics = multi_label_metrics(gold, decide(probs, fixed))
        extra: dict[str, Any] = {"per_label": per_label_scores(gold, decide(probs, fixed), names, fixed)}
        if decoding["threshold"] == "tune":
            tuned = tune_thresholds(probs, gold)
            at_tuned = multi_label_metrics(gold, decide(probs, tuned))
            metrics.update({f"tuned_{k}": v for k, v in at_tuned.items() if k.endswith("f1")})
            extra = {
                "thresholds": tuned,
                "per_label": per_label_scores(gold, decide(probs, tuned), names, tuned),
            }
        return Evaluation(metrics, None, extra)

    def tuned(self, decoding: dict[str, Any], final: Evaluation | None) -> dict[str, Any]:
        """The per-label thresholds tuned on the eval set (`tune`), saved so predict decides alike."""
        if final is not None and final.extra.get("thresholds"):
            return {"thresholds": final.extra["thresholds"]}
        return {"thresholds": None}

    def report_sections(self, data: PreparedData, final: Evaluation | None) -> list[tuple[str, str]]:
        if final is None or not final.extra.get("per_label"):
            return []
        header = ("label", "threshold", "support", "precision", "recall", "f1")
        rows = [[r[k] for k in header] for r in final.extra["per_label"]]
        return [("Per label (final evaluation)", html_table(header, rows, "per-label"))]

    def labels_text(self, label_names: list[str] | None) -> str:
        if not label_names:
            return "The label names were not recorded; outputs are label ids."
        table = md_table(("id", "label"), [(str(i), name) for i, name in enumerate(label_names)])
        return f"{table}\n\nEach label has its own sigmoid: an input may have any number of them."

    def evaluate_file(self, source: str, flags: dict[str, str | None], model: LoadedModel) -> dict[str, Any]:
        table = read_table(source)
        examples = cls.read_examples(
            table, resolve(table, flags, model.meta, need_label=True), need_label=False
        )
        names = list(model.meta["label_names"])
        separator = model.meta.get("label_separator")
        sets = [label_set(e.label, separator, e.where) for e in examples]
        gold = np.asarray(indicator(sets, names, [e.where for e in examples]))
        probs = self._probabilities(examples, model)
        metrics = multi_label_metrics(gold, decide(probs, thresholds_of(model.meta, len(names))))
        return {**metrics, "examples": len(examples)}

    def info(self, meta: dict[str, Any]) -> dict[str, Any]:
        names = meta.get("label_names") or []
        return {"multi_label": {"thresholds": dict(zip(names, thresholds_of(meta, len(names)), strict=True))}}

    def _predict(self, examples: list[cls.TextExample], model: LoadedModel) -> list[dict[str, Any]]:
        names = list(model.meta["label_names"])
        return format_predictions(
            self._probabilities(examples, model), names, thresholds_of(model.meta, len(names))
        )

    def _probabilities(self, examples: list[cls.TextExample], model: LoadedModel) -> np.ndarray:
        encoded = cls.tokenize(model.tokenizer, examples, int(model.meta["max_length"]))
        return torch.sigmoid(model.outputs(encoded)["logits"].float()).numpy()
