"""Classification and regression as a Task: the glue between files, tokenizer and metrics."""

from __future__ import annotations

from typing import Any

import torch

from encoderkit.data.columns import Columns, resolve_columns
from encoderkit.data.lengths import length_stats
from encoderkit.data.tables import read_table
from encoderkit.tasks import Evaluation, PreparedData
from encoderkit.tasks import classification as cls


class SequenceTask:
    model_class = cls.MODEL_CLASS

    def __init__(self, name: str) -> None:
        self.name = name
        self.regression = name == "regression"
        self.default_metric = cls.DEFAULT_METRIC[name]

    def prepare(self, config: Any, tokenizer: Any, model_limit: int) -> PreparedData:
        """Read, check and tokenize train (and eval) data. Raises UserError with file:line."""
        table = read_table(config.train)
        columns = resolve_columns(table, config.text_column, config.text_pair_column, config.label_column)
        train = cls.read_examples(table, columns, need_label=True)
        label_names = None if self.regression else cls.label_names_from(train)
        if self.regression:
            cls.regression_targets(train)  # fail on a bad target before anything else happens
        lengths = cls.tokenize(tokenizer, train, None).lengths
        stats = length_stats(lengths, model_limit)
        max_length = (
            stats.suggested if config.max_length == "auto" else min(int(config.max_length), model_limit)
        )
        encoded = cls.with_targets(cls.tokenize(tokenizer, train, max_length), train, label_names)
        eval_encoded, gold, eval_count = None, None, 0
        if config.eval:
            eval_table = read_table(config.eval)
            eval_columns = resolve_columns(eval_table, columns.text, columns.text_pair, columns.label)
            evals = cls.read_examples(eval_table, eval_columns, need_label=True)
            eval_encoded = cls.with_targets(cls.tokenize(tokenizer, evals, max_length), evals, label_names)
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

    def model_config(self, data: PreparedData) -> dict[str, Any]:
        """Overrides for the model config: label count and names, problem type."""
        if self.regression:
            return {"num_labels": 1, "problem_type": "regression"}
        names = data.label_names or []
        return {
            "num_labels": len(names),
            "id2label": dict(enumerate(names)),
            "label2id": {n: i for i, n in enumerate(names)},
            "problem_type": "single_label_classification",
        }

    def evaluate(self, outputs: dict[str, torch.Tensor], data: PreparedData) -> Evaluation:
        result = cls.evaluate_logits(outputs["logits"], data.eval_gold, data.label_names)
        return Evaluation(result.metrics, result.confusion)

    def saved_settings(self, data: PreparedData, final: Evaluation | None) -> dict[str, Any]:
        return {}

    def report_sections(self, data: PreparedData, final: Evaluation | None) -> list[tuple[str, str]]:
        return []


def _columns_dict(columns: Columns) -> dict[str, str | None]:
    return {"text": columns.text, "text_pair": columns.text_pair, "label": columns.label}
