"""Tasks behind one small interface: read and check data, evaluate outputs, format predictions."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from encoderkit.errors import UserError
from encoderkit.training.batching import Encoded


@dataclass
class PreparedData:
    """Everything training needs from the data, checked before the run folder is created."""

    train: Encoded
    eval: Encoded | None
    eval_gold: Any  # what `evaluate` compares against (targets, or QA examples + features)
    label_names: list[str] | None
    columns: dict[str, str | None]
    lengths: list[int]  # untruncated training lengths, for the report
    max_length: int
    summary: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


@dataclass
class Evaluation:
    metrics: dict[str, float]
    confusion: list[list[int]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # task-specific (QA predictions, threshold)


class Task(Protocol):
    name: str
    model_class: Any
    default_metric: str

    def prepare(self, config: Any, tokenizer: Any, model_limit: int) -> PreparedData: ...

    def model_config(self, data: PreparedData) -> dict[str, Any]: ...

    def evaluate(self, outputs: dict[str, torch.Tensor], data: PreparedData) -> Evaluation: ...

    def saved_settings(self, data: PreparedData, final: Evaluation | None) -> dict[str, Any]: ...

    def report_sections(self, data: PreparedData, final: Evaluation | None) -> list[tuple[str, str]]: ...


def get_task(name: str) -> Task:
    from encoderkit.tasks.qa import QATask
    from encoderkit.tasks.sequence import SequenceTask

    if name in ("classification", "regression"):
        return SequenceTask(name)
    if name == "qa":
        return QATask()
    raise UserError(f"field 'task': '{name}' is not available yet")
