"""`--report-to`: TensorBoard event files and an MLflow store hold what log.jsonl holds, read back
with each tool's own reader; a resumed run continues the same MLflow run; a missing package is one
`error:` line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from encoderkit.cli import main
from encoderkit.config import UserError, check_trackers

FAST = ["--batch-size", "8", "--lr", "3e-3", "--eval-batch-size", "16"]


def log_values(run: Path, key: str) -> list[tuple[int, float]]:
    entries = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    return [(e["step"], e[key]) for e in entries if key in e]


def train_cmd(tiny_model: str, files: tuple[str, str], output: Path, *extra: str) -> list[str]:
    train, dev = files
    return [
        "train",
        "--model",
        tiny_model,
        "--train",
        train,
        "--eval",
        dev,
        "--output",
        str(output),
        *FAST,
        *extra,
    ]


def test_tensorboard_events_hold_the_logged_scalars(
    tiny_model: str, sentiment_files: tuple[str, str], tmp_path: Path
) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    args = train_cmd(tiny_model, sentiment_files, run, "--max-steps", "8", "--eval-steps", "4")
    assert main([*args, "--report-to", "tensorboard", "--run-name", "first"]) == 0
    events = EventAccumulator(str(run / "tb" / "first"))
    events.Reload()
    for key in ("loss", "lr", "eval_accuracy"):
        logged = [(e.step, e.value) for e in events.Scalars(key)]
        expected = log_values(run, key)
        assert [s for s, _ in logged] == [s for s, _ in expected] and expected
        assert [v for _, v in logged] == pytest.approx([v for _, v in expected], rel=1e-6)
    final = json.loads((run / "metrics.json").read_text())
    assert events.Scalars("final_accuracy")[0].value == pytest.approx(final["accuracy"])


def mlflow_client(uri: str) -> Any:
    mlflow = pytest.importorskip("mlflow")
    mlflow.set_tracking_uri(uri)
    return mlflow.tracking.MlflowClient()


def test_mlflow_holds_the_params_and_metrics_and_resume_continues_its_run(
    tiny_model: str, sentiment_files: tuple[str, str], tmp_path: Path
) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow_client(uri)
    run = tmp_path / "run"
    args = train_cmd(
        tiny_model, sentiment_files, run, "--epochs", "2", "--save-steps", "5", "--eval-steps", "6"
    )
    cmd = [sys.executable, "-m", "encoderkit", *args, "--report-to", "mlflow"]
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    killed = subprocess.run(
        cmd, env={**env, "ENCODERKIT_KILL_AT_STEP": "13"}, capture_output=True, text=True, timeout=300
    )
    assert killed.returncode == -9, killed.stderr
    run_id = json.loads((run / "tracking.json").read_text())["mlflow"]
    resumed = subprocess.run([*cmd, "--resume"], env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((run / "tracking.json").read_text())["mlflow"] == run_id  # the same run
    experiment = client.get_experiment_by_name("encoderkit")
    assert [r.info.run_id for r in client.search_runs([experiment.experiment_id])] == [run_id]
    record = client.get_run(run_id)
    assert record.info.status == "FINISHED" and record.info.run_name == "run"
    assert record.data.params["lr"] == "0.003" and record.data.params["batch_size"] == "8"
    history = {m.step: m.value for m in client.get_metric_history(run_id, "eval_accuracy")}
    assert history == pytest.approx(dict(log_values(run, "eval_accuracy")))  # steps past the kill too
    final = json.loads((run / "metrics.json").read_text())
    assert record.data.metrics["final_accuracy"] == pytest.approx(final["accuracy"])


def test_a_missing_tracker_package_is_one_error_line(
    tiny_model: str, sentiment_files: tuple[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import importlib.util

    if importlib.util.find_spec("wandb") is not None:
        pytest.skip("wandb is installed here")
    with pytest.raises(UserError, match=r"wandb needs the wandb package: pip install 'encoderkit\[wandb\]'"):
        check_trackers("tensorboard,wandb")
    capsys.readouterr()
    assert main([*train_cmd(tiny_model, sentiment_files, tmp_path / "run"), "--report-to", "wandb"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: field 'report_to': wandb needs") and err.count("\n") == 1
    assert not (tmp_path / "run").exists()  # refused before anything is written
    with pytest.raises(UserError, match="'board' is not one of none, tensorboard, mlflow, wandb"):
        check_trackers("board")
