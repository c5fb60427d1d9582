"""`encoderkit.train(config)`: data -> model -> loop -> best model, metrics, report.

Everything that can be wrong with the user's input is checked before the run folder is touched.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from safetensors.torch import load_file, save_file
from transformers import get_linear_schedule_with_warmup

from encoderkit import __version__
from encoderkit.config import TrainConfig, save_yaml
from encoderkit.errors import UserError
from encoderkit.inference.forward import forward_all
from encoderkit.modeling import build_model, load_config, load_tokenizer, model_max_length, parameter_counts
from encoderkit.tasks import Evaluation, PreparedData, Task, get_task
from encoderkit.training import run_folder
from encoderkit.training.callbacks import (
    Callback,
    Checkpointer,
    Evaluator,
    LossLogger,
    ProgressBar,
    RunLog,
)
from encoderkit.training.loop import fit
from encoderkit.training.outputs import model_card, save_model, write_run_report
from encoderkit.training.state import LoopState, auto_epochs, make_plan

LOWER_IS_BETTER = ("loss", "mse")


@dataclass
class RunResult:
    run_dir: Path
    metrics: dict[str, Any]
    report: Path


def train(config: TrainConfig, echo: Any = print) -> RunResult:
    """Fine-tune `config.model` on `config.train` and write the run folder `config.output`.

    Raises:
        UserError: bad data, model name, config or run folder (nothing is left behind).
    """
    assert config.output is not None
    task = get_task(config.task)
    run_dir = run_folder.claim(config.output, config.resume, config.overwrite)
    model_config = load_config(config.model)
    tokenizer = load_tokenizer(config.model)
    data = task.prepare(config, tokenizer, model_max_length(model_config, tokenizer))
    metric = config.metric_for_best or task.default_metric
    epochs = auto_epochs(len(data.train)) if config.epochs == "auto" else config.epochs
    config = config.replace(max_length=data.max_length, metric_for_best=metric, epochs=epochs)
    if data.eval is None and config.early_stopping_patience:
        raise UserError("field 'early_stopping_patience': needs --eval data")

    accelerator = Accelerator(mixed_precision=_mixed_precision(config.precision))
    set_seed(config.seed)
    for key, value in task.model_config(data).items():
        setattr(model_config, key, value)
    model = build_model(task.model_class, config.model, model_config, config.strategy)
    trainable, total = parameter_counts(model)
    echo(f"{config.model}: {trainable:,} of {total:,} parameters train ({100 * trainable / total:.2f}%)")

    plan = make_plan(
        len(data.train), config.batch_size, config.grad_accum, config.epochs,
        config.max_steps, config.logging_steps, config.eval_steps, config.save_steps,
    )  # fmt: skip
    optimizer = _adamw(model, config.lr, config.weight_decay)
    scheduler = get_linear_schedule_with_warmup(
        optimizer, round(config.warmup_ratio * plan.total_steps), plan.total_steps
    )
    model, optimizer = accelerator.prepare(model, optimizer)
    state = LoopState()
    # The scheduler is stepped by hand (once per optimizer step at any world size) and saved
    # with the state, instead of being wrapped by `prepare`.
    accelerator.register_for_checkpointing(scheduler, state)

    run_folder.ensure_writable(run_dir)
    log = RunLog(run_dir / "log.jsonl", state)
    if config.resume:
        checkpoint = run_folder.latest_checkpoint(run_dir)
        accelerator.load_state(str(checkpoint))
        log.truncate(state.log_lines)
        echo(f"resuming from {checkpoint} (step {state.global_step} of {plan.total_steps})")
    save_yaml(config, run_dir / "config.yaml")

    pad_left = tokenizer.padding_side == "left"
    best_path = run_dir / run_folder.CHECKPOINTS / run_folder.BEST / "model.safetensors"
    last_eval: dict[str, Evaluation] = {}

    def evaluate() -> dict[str, float]:
        assert data.eval is not None
        outputs = forward_all(
            model, data.eval, config.eval_batch_size, accelerator.device, tokenizer.pad_token_id,
            pad_left, accelerator.autocast,
        )  # fmt: skip
        last_eval["latest"] = task.evaluate(outputs, data)
        return last_eval["latest"].metrics

    def save_best() -> None:
        best_path.parent.mkdir(parents=True, exist_ok=True)
        weights = {k: v.contiguous() for k, v in accelerator.unwrap_model(model).state_dict().items()}
        save_file(weights, str(best_path.with_suffix(".tmp")))
        best_path.with_suffix(".tmp").replace(best_path)

    def save_checkpoint(step: int) -> None:
        tmp = run_dir / run_folder.CHECKPOINTS / f".tmp-{run_folder.STEP_PREFIX}{step}"
        accelerator.save_state(str(tmp))
        run_folder.publish_checkpoint(tmp, run_dir, step)

    callbacks: list[Callback] = [LossLogger(log, plan)]
    if data.eval is not None:
        greater = not any(metric.endswith(s) for s in LOWER_IS_BETTER)
        callbacks.append(
            Evaluator(evaluate, save_best, log, plan, metric, greater, config.early_stopping_patience, echo)
        )
    callbacks += [Checkpointer(save_checkpoint, plan), ProgressBar(plan)]

    started = time.perf_counter()
    fit(
        accelerator, model, optimizer, scheduler, data.train, plan, state, callbacks,
        batch_size=config.batch_size, grad_accum=config.grad_accum, seed=config.seed,
        group_by_length=config.group_by_length, max_grad_norm=config.max_grad_norm,
        pad_id=tokenizer.pad_token_id, pad_left=pad_left,
    )  # fmt: skip

    unwrapped = accelerator.unwrap_model(model)
    final: Evaluation | None = None
    if data.eval is not None:
        if state.best_step != state.last_eval_step:
            unwrapped.load_state_dict(load_file(str(best_path)))
            evaluate()
        final = last_eval["latest"]
    metrics = _final_metrics(final, state, trainable, total, time.perf_counter() - started)
    card = model_card(config, data, task, metrics, __version__)
    metadata = {**_metadata(config, data, task), **task.saved_settings(data, final)}
    save_model(unwrapped, tokenizer, run_dir / "model", metadata, card)
    report = write_run_report(run_dir, config, data, task, metrics, final)
    shutil.rmtree(run_dir / run_folder.CHECKPOINTS, ignore_errors=True)
    run_folder.write_json(run_dir / "metrics.json", metrics)  # last: marks the run finished
    return RunResult(run_dir, metrics, report)


def _mixed_precision(precision: str) -> str:
    cuda = torch.cuda.is_available()
    if precision == "auto":
        if not cuda:
            return "no"
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if precision == "fp16" and not cuda:
        raise UserError("field 'precision': fp16 needs a CUDA GPU (use fp32 or bf16 on CPU)")
    return {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}[precision]


def _adamw(model: torch.nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW without weight decay on biases and normalisation weights (as BERT was trained).

    Fused: one kernel for all parameters, on GPU and (since torch 2.4) on CPU, where it is ~5x
    faster than the default for-each implementation on a 22M-parameter model.
    """
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if param.ndim < 2 or "norm" in name.lower() else decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, fused=True)


def _final_metrics(
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
        }
    )
    return metrics


def _metadata(config: TrainConfig, data: PreparedData, task: Task) -> dict[str, Any]:
    """What a Predictor needs besides the HF files: task, columns, max_length, labels."""
    return {
        "encoderkit_version": __version__,
        "task": task.name,
        "base_model": config.model,
        "columns": data.columns,
        "max_length": data.max_length,
        "label_names": data.label_names,
    }
