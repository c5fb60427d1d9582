"""What a finished run leaves behind: the model folder (with its card) and the report."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from encoderkit.config import TrainConfig
from encoderkit.reporting.model_card import ModelCardInputs, render_model_card
from encoderkit.reporting.report import ReportInputs, write_report
from encoderkit.tasks import Evaluation, PreparedData, Task

METADATA_FILE = "encoderkit.json"
HYPERPARAMETERS = (
    "epochs", "max_steps", "batch_size", "grad_accum", "lr", "weight_decay", "warmup_ratio",
    "max_grad_norm", "max_length", "seed", "precision", "strategy",
)  # fmt: skip


def save_model(model: Any, tokenizer: Any, model_dir: Path, metadata: dict[str, Any], card: str) -> None:
    """Save in Hugging Face format, plus encoderkit.json and a README card; swap in atomically."""
    tmp = model_dir.with_name(f".{model_dir.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    (tmp / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")
    (tmp / "README.md").write_text(card, encoding="utf-8")
    shutil.rmtree(model_dir, ignore_errors=True)
    tmp.replace(model_dir)


def model_card(
    config: TrainConfig, data: PreparedData, task: Task, metrics: dict[str, Any], version: str
) -> str:
    return render_model_card(
        ModelCardInputs(
            base_model=config.model,
            task=task.name,
            label_names=data.label_names,
            metrics={k: v for k, v in metrics.items() if isinstance(v, float)},
            hyperparameters={k: getattr(config, k) for k in HYPERPARAMETERS},
            train_data=str(config.train),
            eval_data=config.eval,
            columns=data.columns,
            version=version,
        )
    )


def write_run_report(
    run_dir: Path,
    config: TrainConfig,
    data: PreparedData,
    task: Task,
    metrics: dict[str, Any],
    final: Evaluation | None,
) -> Path:
    log_path = run_dir / "log.jsonl"
    log = (
        [json.loads(line) for line in log_path.read_text(encoding="utf-8").splitlines()]
        if log_path.exists()
        else []
    )
    inputs = ReportInputs(
        title=f"encoderkit: {task.name} with {config.model}",
        config=config.to_dict(),
        metrics=metrics,
        log=log,
        label_names=data.label_names,
        confusion=final.confusion if final else None,
        lengths=data.lengths,
        max_length=data.max_length,
        data_summary=data.summary,
        warnings=data.warnings + training_warnings(log),
        extra_sections=task.report_sections(data, final),
    )
    return write_report(run_dir, inputs)


def training_warnings(log: list[dict[str, Any]]) -> list[str]:
    """Say so when the loss did not fall: the most common silent failure of a fine-tuning run."""
    losses = [e["loss"] for e in log if "loss" in e]
    if len(losses) < 4:
        return []
    head, tail = losses[: max(1, len(losses) // 10)], losses[-max(1, len(losses) // 10) :]
    start, end = sum(head) / len(head), sum(tail) / len(tail)
    if end > 0.9 * start:
        return [
            f"training loss barely moved ({start:.4f} -> {end:.4f}): the model may not be learning; "
            "check the learning rate, the labels and the number of steps"
        ]
    return []
