"""The task registry: every task encoderkit knows, one line each.

A line names the task (and its aliases), the module and class that implement it (see
`tasks/base.py` for the protocol), and the eval metrics `--metric-for-best` may name, first the
default. It is plain data at the bottom of the layers, so config validation and the CLI's
choices read it without importing torch; `encoderkit.tasks.get_task` imports the module.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TaskEntry:
    name: str
    module: str  # where the Task class lives
    cls: str
    metrics: tuple[str, ...]  # eval metrics, the default first
    checked_metrics: bool = True  # False: the metric set depends on the data (QA: HasAns_* for v2)
    trainable: bool = True  # False: inference only (fill-mask on a pretrained masked LM)
    aliases: tuple[str, ...] = ()


REGISTRY = (
    TaskEntry("classification", "encoderkit.tasks.sequence", "SequenceTask", ("accuracy", "f1", "mcc")),
    TaskEntry(
        "multi-label",
        "encoderkit.tasks.multi_label",
        "MultiLabelTask",
        ("micro_f1", "macro_f1", "subset_accuracy", "precision", "recall"),
        checked_metrics=False,  # and tuned_micro_f1 / tuned_macro_f1 with --multi-label-threshold tune
        aliases=("multi_label", "multilabel"),
    ),
    TaskEntry("regression", "encoderkit.tasks.sequence", "SequenceTask", ("pearson", "spearman", "mse")),
    TaskEntry("qa", "encoderkit.tasks.qa", "QATask", ("f1", "exact_match"), checked_metrics=False),
    TaskEntry(
        "token-classification",
        "encoderkit.tasks.token_classification",
        "TokenClassificationTask",
        ("f1", "precision", "recall", "accuracy"),
        checked_metrics=False,
        aliases=("ner",),
    ),
    TaskEntry("mlm", "encoderkit.tasks.mlm", "MaskedLMTask", ("perplexity", "loss", "accuracy")),
    TaskEntry("fill-mask", "encoderkit.tasks.fill_mask", "FillMaskTask", (), trainable=False),
)

TRAINABLE = tuple(name for e in REGISTRY if e.trainable for name in (e.name, *e.aliases))


MULTI_LABEL = "multi-label"  # what `--multi-label` turns `--task classification` into


def entry(name: str) -> TaskEntry | None:
    """The entry of a task name or alias, or None."""
    return next((e for e in REGISTRY if name == e.name or name in e.aliases), None)
