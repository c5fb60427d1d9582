"""What a finished run leaves behind: the model folder (with its card) and the report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from encoderkit.config import TrainConfig
from encoderkit.model_folder.card import ModelCardInputs, render_model_card
from encoderkit.model_folder.metadata import model_metadata
from encoderkit.modeling import published_name
from encoderkit.reporting.report import ReportInputs, write_report
from encoderkit.tasks import Evaluation, PreparedData, Task
from encoderkit.training.state import LoopState

HYPERPARAMETERS = (
    "epochs", "max_steps", "batch_size", "batch_tokens", "grad_accum", "lr", "weight_decay", "warmup_ratio",
    "max_grad_norm", "max_length", "seed", "precision", "strategy",
)  # fmt: skip


def model_card(
    config: TrainConfig, data: PreparedData, task: Task, metrics: dict[str, Any], version: str
) -> str:
    return render_model_card(
        ModelCardInputs(
            base_model=published_name(config.model),
            task=task.name,
            text=task.card,
            labels=task.labels_text(data.label_names),
            metrics={k: v for k, v in metrics.items() if isinstance(v, float)},
            hyperparameters={k: getattr(config, k) for k in HYPERPARAMETERS},
            train_data=published_name(str(config.train)),
            eval_data=_eval_data(config),
            columns=data.columns,
            version=version,
        )
    )


def _eval_data(config: TrainConfig) -> str | None:
    """The card's eval data: the file's name, or the hold-out of the training file."""
    if config.eval_split:
        return f"{100 * config.eval_split:g}% of {published_name(str(config.train))} (seed {config.seed})"
    return published_name(config.eval) if config.eval else None


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
        config=config.applying(),
        metrics=metrics,
        log=log,
        label_names=data.label_names,
        confusion=final.confusion if final else None,
        lengths=data.lengths,
        max_length=data.max_length,
        data_summary=data.summary,
        warnings=data.warnings + training_warnings(log),
        extra_sections=task.report_sections(data, final),
        metric_notes=final.extra.get("metric_notes", {}) if final else {},
    )
    return write_report(run_dir, inputs)


def training_warnings(log: list[dict[str, Any]]) -> list[str]:
    """Warnings the run wrote to its log (see training/watch.py), in order, without repeats."""
    return list(dict.fromkeys(e["warning"] for e in log if "warning" in e))


def final_metrics(
    final: Evaluation | None, state: LoopState, trainable: int, total: int, wall_s: float
) -> dict[str, Any]:
    metrics: dict[str, Any] = dict(final.metrics) if final else {}
    metrics.update(
        {
            "train_runtime_s": round(state.train_time_s, 3),
            "train_samples_per_s": round(state.examples_seen / max(state.train_time_s, 1e-9), 3),
            "trainable_params": trainable,
            "total_params": total,
            "best_step": state.best_step,
            "steps": state.global_step,
            "wall_time_s": round(wall_s, 3),
            "peak_memory_mb": peak_memory_mb(),
        }
    )
    return metrics


def peak_memory_mb() -> float:
    """Peak memory of this run: GPU memory allocated by torch, or the process's peak RSS on CPU."""
    if torch.cuda.is_available():
        return round(torch.cuda.max_memory_allocated() / 2**20, 1)
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # Linux: KiB


def metadata(config: TrainConfig, data: PreparedData, task: Task, settings: dict[str, Any]) -> dict[str, Any]:
    """encoderkit.json of this run's model: `settings` are the task's decoding (and tuned) settings."""
    return model_metadata(
        task=task.name, base_model=config.model, columns=data.columns, max_length=data.max_length,
        label_names=data.label_names, strategy=config.strategy,
        # An unmerged LoRA model/ holds only the adapter: the Predictor loads base_model under it.
        adapter=config.strategy == "lora" and not config.merge, settings=settings,
    )  # fmt: skip
