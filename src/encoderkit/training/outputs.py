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
    if hasattr(model, "peft_config"):  # an unmerged adapter: keep the task config (labels) beside it
        model.get_base_model().config.save_pretrained(tmp)
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
    """Warnings the run wrote to its log (see training/watch.py), in order, without repeats."""
    return list(dict.fromkeys(e["warning"] for e in log if "warning" in e))
