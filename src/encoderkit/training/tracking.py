"""`--report-to`: the run's log.jsonl scalars, config and final metrics in TensorBoard, MLflow or
W&B, through Accelerate's trackers (the ones `Accelerator(log_with=...)` builds).

Only the main process logs (Accelerate's trackers act on the main process only). A tracker's run
id is kept in the run folder (`tracking.json`), so `--resume` continues the same MLflow or W&B
run; TensorBoard appends to the same event folder.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from encoderkit.atomic import write_atomic
from encoderkit.config import TrainConfig, trackers_of

PROJECT = "encoderkit"  # the MLflow experiment and the W&B project
IDS_FILE = "tracking.json"


def tracking_dir(config: TrainConfig) -> Path:
    return Path(config.tracking_dir) if config.tracking_dir else Path(str(config.output)) / "tb"


def run_name(config: TrainConfig) -> str:
    return config.run_name or Path(str(config.output)).resolve().name


def build_trackers(config: TrainConfig, run_dir: Path) -> list[Any]:
    """Accelerate tracker objects for `config.report_to`, resuming the runs named in tracking.json."""
    from accelerate.tracking import MLflowTracker, TensorBoardTracker, WandBTracker

    ids = _saved_ids(run_dir) if config.resume else {}
    name, built = run_name(config), []
    for kind in trackers_of(config.report_to):
        if kind == "tensorboard":
            built.append(TensorBoardTracker(name, tracking_dir(config)))
        elif kind == "mlflow":
            built.append(MLflowTracker(PROJECT, config.tracking_dir, run_id=ids.get("mlflow"), run_name=name))
        elif kind == "wandb":
            kwargs: dict[str, Any] = {"name": name, "id": ids.get("wandb"), "resume": "allow"}
            if config.tracking_dir:
                kwargs["dir"] = config.tracking_dir
            built.append(WandBTracker(PROJECT, **kwargs))
    return built


def save_ids(trackers: list[Any], run_dir: Path) -> None:
    """The MLflow and W&B run ids, so a resumed run logs into the same runs."""
    ids = {}
    for tracker in trackers:
        if tracker.name == "mlflow" and getattr(tracker, "active_run", None) is not None:
            ids["mlflow"] = tracker.active_run.info.run_id
        elif tracker.name == "wandb" and getattr(tracker, "run", None) is not None:
            ids["wandb"] = tracker.run.id
    if ids:
        write_atomic(run_dir / IDS_FILE, json.dumps(ids))


def _saved_ids(run_dir: Path) -> dict[str, str]:
    try:
        return dict(json.loads((run_dir / IDS_FILE).read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return {}


def scalars(entry: dict[str, Any]) -> tuple[int | None, dict[str, float]]:
    """(step, the entry's finite numbers) of one log.jsonl entry: what a tracker plots. Text (a
    warning) and booleans are left to log.jsonl."""
    values = {
        key: float(value)
        for key, value in entry.items()
        if key != "step"
        and isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
    }
    step = entry.get("step")
    return (int(step) if isinstance(step, int) else None), values


def hyperparameters(config: TrainConfig) -> dict[str, str | int | float | bool]:
    """The resolved config fields this run reads, as a tracker's hyperparameters (None spelled
    `null`: TensorBoard's hparams and MLflow's params take no None)."""
    return {
        key: ("null" if value is None else value)
        for key, value in config.applying().items()
        if key not in ("resume", "resume_force", "overwrite")
    }
