"""Classification and regression as a Task: the glue between files, tokenizer, model and metrics.

The pure parts (labels, targets, tokenizing, metrics, output rows) are in `classification.py`.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from pydantic import BaseModel, Field
from transformers import AutoModelForSequenceClassification

from encoderkit.config import TrainConfig
from encoderkit.data.columns import Columns, resolve_columns
from encoderkit.data.lengths import length_stats
from encoderkit.data.split import holdout, split_note
from encoderkit.data.tables import Table, read_table
from encoderkit.errors import UserError
from encoderkit.features.encoded import Encoded
from encoderkit.model_folder.card import CardText
from encoderkit.registry import TaskEntry
from encoderkit.reporting.markdown import md_table
from encoderkit.tasks import classification as cls
from encoderkit.tasks.base import Evaluation, LoadedModel, Outputs, PreparedData, Registered, label_maps
from encoderkit.tasks.rows import check_rows, text_field, with_ids
from encoderkit.tasks.schemas import Id, Strict, id_field, request_of

ROW_FIELDS = ("text", "text_pair")


class TextInput(Strict):
    id: Id = id_field()
    text: str
    text_pair: str | None = Field(None, description="the second text, for models trained on pairs")


TextRequest = request_of("TextRequest", TextInput)


class TextOutput(BaseModel):
    id: Id = None
    label: int | None = Field(None, description="classification: the predicted class id")
    label_name: str | None = None
    probabilities: dict[str, float] | None = None
    score: float | None = Field(None, description="regression: the predicted value")


class TextResponse(BaseModel):
    task: str
    predictions: list[TextOutput]


class SequenceTask(Registered):
    """Single texts or pairs, any number of labels (`classification`) or one score (`regression`)."""

    model_class = AutoModelForSequenceClassification
    target_keys = ("labels", "weights")  # weights: --class-weights, per training example
    prepare_fields = (
        "task",
        "train",
        "eval",
        "eval_split",
        "class_weights",
        "text_column",
        "text_pair_column",
        "label_column",
        "max_length",
    )
    request_body = TextRequest
    response_body = TextResponse

    def __init__(self, entry: TaskEntry) -> None:
        super().__init__(entry)
        self.regression = entry.name == "regression"
        phrase = (
            "text regression (one continuous score per input)" if self.regression else "text classification"
        )
        self.card = CardText(
            pipeline_tag="text-classification",
            auto_class="AutoModelForSequenceClassification",
            phrase=phrase,
            example_call='inputs = tokenizer("An example sentence.", return_tensors="pt")',
        )

    # Training --------------------------------------------------------------------------------

    def prepare(self, config: TrainConfig, tokenizer: Any, model_limit: int) -> PreparedData:
        """Read, check and tokenize train (and eval) data. Raises UserError with file:line."""
        assert config.train is not None  # validated by the config
        table = read_table(config.train)
        columns = resolve_columns(table, config.text_column, config.text_pair_column, config.label_column)
        train = self.read_examples(config, table, columns)
        label_names = self.label_names(config, train)
        held: list[cls.TextExample] | None = None
        if config.eval_split:
            strata = self.strata(train)
            train, held = holdout(train, config.eval_split, config.seed, strata=strata)
        lengths = cls.tokenize(tokenizer, train, None).lengths
        stats = length_stats(lengths, model_limit)
        max_length = (
            stats.suggested if config.max_length == "auto" else min(int(config.max_length), model_limit)
        )
        encoded = self.with_targets(config, cls.tokenize(tokenizer, train, max_length), train, label_names)
        weights = None
        if config.class_weights and label_names:
            weights = cls.class_weights(config.class_weights, label_names, encoded.targets["labels"])
            encoded.targets["weights"] = [weights[i] for i in encoded.targets["labels"]]
        eval_encoded, gold, eval_count = None, None, 0
        evals = held
        if config.eval:
            eval_table = read_table(config.eval)
            eval_columns = resolve_columns(eval_table, columns.text, columns.text_pair, columns.label)
            evals = self.read_examples(config, eval_table, eval_columns)
        if evals:
            eval_encoded = self.with_targets(
                config, cls.tokenize(tokenizer, evals, max_length), evals, label_names
            )
            gold, eval_count = eval_encoded.targets["labels"], len(evals)
        summary: dict[str, Any] = {
            "train examples": len(train),
            "eval examples": eval_count,
            "text columns": ", ".join(c for c in (columns.text, columns.text_pair) if c),
            "label column": columns.label,
            "max_length": f"{max_length} ({'auto: p99' if config.max_length == 'auto' else 'set'})",
            "truncated examples": f"{100 * sum(n > max_length for n in lengths) / len(lengths):.2f}%",
        }
        if label_names:
            summary["labels"] = ", ".join(label_names)
        if weights is not None and label_names:
            spelled = ", ".join(f"{n} {w:.3g}" for n, w in zip(label_names, weights, strict=True))
            summary["class weights"] = f"{spelled} ({config.class_weights})"
        if held is not None and config.eval_split:
            how = "plain" if strata is None else "stratified by label"
            summary["eval examples"] = split_note(config.eval_split, config.seed, len(held), how)
        return PreparedData(
            train=encoded,
            eval=eval_encoded,
            eval_gold=gold,
            label_names=label_names,
            columns=_columns_dict(columns),
            lengths=lengths,
            max_length=max_length,
            summary=summary,
        )

    # What one kind of label (a class, a score, a set of classes) changes in `prepare`.

    def read_examples(self, config: TrainConfig, table: Table, columns: Columns) -> list[cls.TextExample]:
        return cls.read_examples(table, columns, need_label=True)

    def label_names(self, config: TrainConfig, train: list[cls.TextExample]) -> list[str] | None:
        if self.regression:
            cls.regression_targets(train)  # fail on a bad target before anything else happens
            return None
        return cls.label_names_from(train)

    def strata(self, train: list[cls.TextExample]) -> list[str] | None:
        """What an --eval-split hold-out keeps in proportion: the class (classification)."""
        return None if self.regression else [cls.label_key(e.label, e.where) for e in train]

    def with_targets(
        self, config: TrainConfig, encoded: Encoded, examples: list[cls.TextExample], names: list[str] | None
    ) -> Encoded:
        return cls.with_targets(encoded, examples, names)

    def model_config(self, data: PreparedData) -> dict[str, Any]:
        """Overrides for the model config: label count and names, problem type."""
        if self.regression:
            return {"num_labels": 1, "problem_type": "regression"}
        names = data.label_names or []
        return {**label_maps(names), "problem_type": "single_label_classification"}

    def loss(self, logits: Outputs, targets: Outputs, pad: torch.Tensor | None) -> torch.Tensor:
        """Mean squared error for regression, else cross-entropy, as HF's heads compute them;
        with --class-weights, each example's cross-entropy times its class's weight, averaged over
        examples (the weights average 1 over the training set, so the loss keeps its scale)."""
        values, labels = logits["logits"], targets["labels"]
        if self.regression:
            return F.mse_loss(values.squeeze(-1).float(), labels.float())
        if "weights" in targets:
            return (F.cross_entropy(values.float(), labels, reduction="none") * targets["weights"]).mean()
        return F.cross_entropy(values.float(), labels)

    def decoding(self, config: TrainConfig, data: PreparedData) -> dict[str, Any]:
        return {}  # argmax (or the score) needs no settings; labels and columns are saved for all tasks

    def evaluate(self, outputs: Outputs, data: PreparedData, decoding: dict[str, Any]) -> Evaluation:
        result = cls.evaluate_logits(outputs["logits"], data.eval_gold, data.label_names)
        names = data.label_names or []
        notes = {"f1": f"positive class: {names[1]}" if len(names) == 2 else "macro average over the classes"}
        return Evaluation(result.metrics, result.confusion, {"metric_notes": notes} if names else {})

    def tuned(self, decoding: dict[str, Any], final: Evaluation | None) -> dict[str, Any]:
        return {}

    def report_sections(self, data: PreparedData, final: Evaluation | None) -> list[tuple[str, str]]:
        return []

    def labels_text(self, label_names: list[str] | None) -> str:
        if self.regression:
            return "The model outputs one continuous score per input (no labels)."
        if not label_names:
            return "The label names were not recorded; outputs are class ids."
        return md_table(("id", "label"), [(str(i), name) for i, name in enumerate(label_names)])

    # Inference -------------------------------------------------------------------------------

    def check_rows(self, rows: list[dict[str, Any]], meta: dict[str, Any]) -> None:
        text_examples(check_rows(rows, self.name, ROW_FIELDS), _pairs(meta))

    def predict_rows(self, rows: list[dict[str, Any]], model: LoadedModel) -> list[dict[str, Any]]:
        examples = text_examples(check_rows(rows, self.name, ROW_FIELDS), _pairs(model.meta))
        return with_ids(rows, self._predict(examples, model))

    def predict_file(
        self, source: str, flags: dict[str, str | None], model: LoadedModel
    ) -> list[dict[str, Any]]:
        table = read_table(source)
        columns = resolve(table, flags, model.meta, need_label=False)
        examples = cls.read_examples(table, Columns(columns.text, columns.text_pair, None), need_label=False)
        predictions = self._predict(examples, model)
        if "id" in table.columns:
            predictions = [{"id": row.get("id"), **p} for row, p in zip(table.rows, predictions, strict=True)]
        return predictions

    def evaluate_file(self, source: str, flags: dict[str, str | None], model: LoadedModel) -> dict[str, Any]:
        table = read_table(source)
        examples = cls.read_examples(
            table, resolve(table, flags, model.meta, need_label=True), need_label=True
        )
        names = model.meta.get("label_names")
        targets = cls.label_ids(examples, names) if names else cls.regression_targets(examples)
        result = cls.evaluate_logits(_logits(examples, model), targets, names)
        return {**result.metrics, "examples": len(examples)}

    def info(self, meta: dict[str, Any]) -> dict[str, Any]:
        return {}

    def text_lengths(self, tokenizer: Any, source: str, flags: dict[str, str | None]) -> list[int]:
        table = read_table(source)
        columns = resolve_columns(table, flags.get("text"), flags.get("text_pair"), None, need_label=False)
        examples = cls.read_examples(table, Columns(columns.text, columns.text_pair, None), need_label=False)
        return cls.tokenize(tokenizer, examples, None).lengths

    def _predict(self, examples: list[cls.TextExample], model: LoadedModel) -> list[dict[str, Any]]:
        """Label id, name and probabilities (classification) or a score (regression) per example."""
        return cls.format_predictions(_logits(examples, model), model.meta.get("label_names"))


def _logits(examples: list[cls.TextExample], model: LoadedModel) -> torch.Tensor:
    encoded = cls.tokenize(model.tokenizer, examples, int(model.meta["max_length"]))
    return model.outputs(encoded)["logits"]


def _pairs(meta: dict[str, Any]) -> bool:
    """Whether the model was trained on (text, text_pair) inputs."""
    return bool((meta.get("columns") or {}).get("text_pair"))


def resolve(table: Table, flags: dict[str, str | None], meta: dict[str, Any], need_label: bool) -> Columns:
    """Columns from the flags, falling back to those the model was trained with, then defaults."""
    trained = meta.get("columns", {})

    def pick(role: str) -> str | None:
        if flags.get(role):
            return flags[role]
        name = trained.get(role)
        return name if name in table.columns else None

    return resolve_columns(table, pick("text"), pick("text_pair"), pick("label"), need_label)


def text_examples(rows: list[dict[str, Any]], pairs: bool) -> list[cls.TextExample]:
    """One TextExample per row; `pairs`: the model was trained on (text, text_pair)."""
    examples = []
    for i, row in enumerate(rows):
        where = f"inputs[{i}]"
        text = text_field(row, "text", where)
        pair = text_field(row, "text_pair", where, required=pairs)
        if pair is not None and not pairs:
            raise UserError(f"{where}.text_pair: this model was trained on single texts, not pairs")
        examples.append(cls.TextExample(str(text), pair, None, where))
    return examples


def _columns_dict(columns: Columns) -> dict[str, str | None]:
    return {"text": columns.text, "text_pair": columns.text_pair, "label": columns.label}
