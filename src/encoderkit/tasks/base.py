"""The one interface every task implements, and the data that passes through it.

A task module is the only place that knows its task: how its data is read and checked, its
features, its model class and head config, its loss, how raw outputs become predictions (one
decoder for evaluation, `predict` and `serve`), its metrics, its predict rows and serve bodies,
its report sections and its model-card phrases. Training, inference, the server and the model
card reach it through `encoderkit.tasks.get_task(name)`; nothing outside tasks/ compares task
names.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from pydantic import BaseModel

from encoderkit.config import TrainConfig
from encoderkit.errors import UserError
from encoderkit.features.encoded import Encoded
from encoderkit.features.forward import OUTPUT_KEYS, Reduce
from encoderkit.model_folder.card import CardText
from encoderkit.registry import TaskEntry

Outputs = dict[str, torch.Tensor]


@dataclass
class PreparedData:
    """Everything training needs from the data, checked before the run folder is created.

    `prepare` is pure: what it learnt that decoding needs goes into `settings` (QA: the tokenizer's
    padding side, the metric the training data implies), what it has to say into `messages` (the
    data check, printed by the caller), so a cached copy serves a run exactly as a fresh one.
    """

    train: Encoded
    eval: Encoded | None
    eval_gold: Any  # what `evaluate` compares against (targets, or QA examples + features)
    label_names: list[str] | None
    columns: dict[str, str | None]
    lengths: list[int]  # untruncated training lengths, for the report
    max_length: int
    summary: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)


@dataclass
class Evaluation:
    metrics: dict[str, float]
    confusion: list[list[int]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # task-specific (QA predictions, threshold)


class LoadedModel(Protocol):
    """A saved model ready for inference, as the tasks' inference methods use it (the Predictor)."""

    tokenizer: Any
    meta: dict[str, Any]  # the folder's encoderkit.json
    model: Any
    device: torch.device

    def outputs(self, encoded: Encoded, reduce: Reduce | None = None) -> Outputs: ...


class Task(Protocol):
    entry: TaskEntry  # its registry line: name, aliases, metrics
    model_class: Any  # the transformers AutoModelFor... class
    target_keys: tuple[str, ...]  # batch keys the loss reads (`labels`, `start_positions`, ...)
    prepare_fields: tuple[str, ...]  # the config fields `prepare` reads: the token cache's key
    card: CardText
    request_body: type[BaseModel]  # serve: /v1/predict request and response
    response_body: type[BaseModel]

    name: str
    default_metric: str  # what selects the best checkpoint unless --metric-for-best says otherwise

    # Training --------------------------------------------------------------------------------

    def tokenizer_for(self, config: TrainConfig, tokenizer: Any) -> Any:
        """The tokenizer the run uses: the model's (most tasks), or one trained on the data (MLM)."""
        ...

    def prepare(self, config: TrainConfig, tokenizer: Any, model_limit: int) -> PreparedData: ...

    def model_config(self, data: PreparedData) -> dict[str, Any]: ...

    def training_features(
        self, data: PreparedData, indices: Sequence[int], epoch: int, seed: int
    ) -> tuple[Encoded, Sequence[int]]:
        """(features, which of them) a training batch is collated from: `data.train` itself for most
        tasks; MLM masks its sequences anew each epoch, seeded by (seed, epoch, feature)."""
        ...

    def loss_units(self, data: PreparedData, indices: Sequence[int], epoch: int, seed: int) -> int:
        """What `loss` averages over in these training features: examples (most tasks), or
        labelled tokens (token classification, MLM). The loop weights each micro-batch by its
        share, so a step is the same mean with any --grad-accum and any number of processes."""
        ...

    def loss(self, logits: Outputs, targets: Outputs, pad: torch.Tensor | None) -> torch.Tensor:
        """The mean loss of a batch; `pad` marks padded positions ([B, L], None for a packed batch)."""
        ...

    def forward_loss(self, model: torch.nn.Module, inputs: dict[str, Any], targets: Outputs) -> torch.Tensor:
        """The loss of a padded training batch: the model's outputs, then `loss` (most tasks); MLM
        runs its head on the masked positions only."""
        ...

    def reduce_outputs(self, data: PreparedData) -> Reduce | None:
        """What evaluation keeps of each batch's outputs (None: the logits; MLM: masked-token sums)."""
        ...

    def decoding(self, config: TrainConfig, data: PreparedData) -> dict[str, Any]:
        """The settings the decoder reads, saved in encoderkit.json: a Predictor decodes as evaluation."""
        ...

    def evaluate(self, outputs: Outputs, data: PreparedData, decoding: dict[str, Any]) -> Evaluation: ...

    def tuned(self, decoding: dict[str, Any], final: Evaluation | None) -> dict[str, Any]:
        """Settings chosen on the eval set (QA: the SQuAD v2 null threshold), saved beside `decoding`."""
        ...

    def report_sections(self, data: PreparedData, final: Evaluation | None) -> list[tuple[str, str]]: ...

    def labels_text(self, label_names: list[str] | None) -> str:
        """The model card's "Labels" section (Markdown)."""
        ...

    # Inference (a saved model's meta holds what `decoding` and `tuned` returned) --------------

    def check_rows(self, rows: list[dict[str, Any]], meta: dict[str, Any]) -> None:
        """Raise the UserError `predict_rows` would raise, without a tokenizer or the model."""
        ...

    def predict_rows(self, rows: list[dict[str, Any]], model: LoadedModel) -> list[dict[str, Any]]: ...

    def predict_file(
        self, source: str, flags: dict[str, str | None], model: LoadedModel
    ) -> list[dict[str, Any]]: ...

    def evaluate_file(
        self, source: str, flags: dict[str, str | None], model: LoadedModel
    ) -> dict[str, Any]: ...

    def info(self, meta: dict[str, Any]) -> dict[str, Any]:
        """What /v1/info and the web page add for this task."""
        ...

    def text_lengths(self, tokenizer: Any, source: str, flags: dict[str, str | None]) -> list[int]:
        """`encoderkit lengths`: the tokens of each example of a data file, special tokens included."""
        ...


class Registered:
    """What every task takes from its registry line (the entry, the name, the default metric), and
    the hooks most tasks leave as they are."""

    def __init__(self, entry: TaskEntry) -> None:
        self.entry = entry
        self.name = entry.name
        self.default_metric = entry.metrics[0] if entry.metrics else "loss"

    def tokenizer_for(self, config: TrainConfig, tokenizer: Any) -> Any:
        return tokenizer

    def training_features(
        self, data: PreparedData, indices: Sequence[int], epoch: int, seed: int
    ) -> tuple[Encoded, Sequence[int]]:
        return data.train, indices

    def forward_loss(self, model: torch.nn.Module, inputs: dict[str, Any], targets: Outputs) -> torch.Tensor:
        out = model(**inputs)
        logits = {k: getattr(out, k) for k in OUTPUT_KEYS if k in out}
        loss: torch.Tensor = self.loss(logits, targets, inputs["attention_mask"] == 0)  # type: ignore[attr-defined]
        return loss

    def reduce_outputs(self, data: PreparedData) -> Reduce | None:
        return None

    def loss_units(self, data: PreparedData, indices: Sequence[int], epoch: int, seed: int) -> int:
        return len(indices)

    def text_lengths(self, tokenizer: Any, source: str, flags: dict[str, str | None]) -> list[int]:
        raise UserError(f"lengths: not available for --task {self.name}")


def label_maps(names: list[str]) -> dict[str, Any]:
    """The model config's label count and names (what `from_pretrained` users read back)."""
    return {
        "num_labels": len(names),
        "id2label": dict(enumerate(names)),
        "label2id": {n: i for i, n in enumerate(names)},
    }


def data_check_lines(summary: dict[str, Any]) -> list[str]:
    """The data check as console lines: a heading, then one aligned `key  value` line each."""
    width = max(len(k) for k in summary)
    return ["data check:", *(f"  {key:<{width}}  {value}" for key, value in summary.items())]
