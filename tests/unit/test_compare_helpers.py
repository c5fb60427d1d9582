"""The pure parts of `encoderkit compare`: strategy lists, the folder rules, each run's config."""

from __future__ import annotations

from pathlib import Path

import pytest

from encoderkit.compare import parse_strategies, prepare_folder, setup_notes, strategy_config
from encoderkit.config import build_config
from encoderkit.errors import UserError
from encoderkit.reporting.comparison import StrategyResult


def test_strategies_are_checked() -> None:
    assert parse_strategies(" full, lora ") == ["full", "lora"]
    for bad, message in (("", "at least one"), ("full,lasso", "'lasso'"), ("lora,lora", "twice")):
        with pytest.raises(UserError, match=message):
            parse_strategies(bad)


def test_folder_rules(tmp_path: Path) -> None:
    folder = tmp_path / "cmp"
    prepare_folder(folder, resume=False, overwrite=False)  # new: fine, creates nothing
    assert not folder.exists()
    (folder / "full").mkdir(parents=True)
    with pytest.raises(UserError, match="unfinished comparison"):
        prepare_folder(folder, resume=False, overwrite=False)
    prepare_folder(folder, resume=True, overwrite=False)  # resuming keeps what is there
    assert (folder / "full").is_dir()
    (folder / "comparison.json").write_text("{}")
    with pytest.raises(UserError, match="finished comparison"):
        prepare_folder(folder, resume=True, overwrite=False)
    prepare_folder(folder, resume=False, overwrite=True)
    assert not folder.exists()


def test_each_strategy_gets_the_same_budget_and_its_own_lr(tmp_path: Path) -> None:
    config = build_config({}, {"train": "t.jsonl", "output": str(tmp_path), "epochs": 2, "seed": 3})
    child = strategy_config(config, "lora", tmp_path / "lora", resume=False)
    assert (child["strategy"], child["epochs"], child["seed"], child["lr"]) == ("lora", 2.0, 3, None)
    assert child["output"] == str(tmp_path / "lora") and child["overwrite"] and not child["resume"]
    # --resume resumes a strategy only where it left a checkpoint; otherwise it starts it afresh.
    assert strategy_config(config, "full", tmp_path / "full", resume=True)["overwrite"]
    (tmp_path / "full" / "checkpoints" / "step-4").mkdir(parents=True)
    resumed = strategy_config(config, "full", tmp_path / "full", resume=True)
    assert resumed["resume"] and not resumed["overwrite"]


def test_row_reads_the_metric_before_training() -> None:
    metrics = {
        "trainable_params": 10,
        "total_params": 40,
        "train_runtime_s": 2.0,
        "accuracy": 0.9,
        "steps": 8,
    }
    log = [{"step": 0, "eval_accuracy": 0.5}, {"step": 8, "loss": 0.1}, {"step": 8, "eval_accuracy": 0.9}]
    row = StrategyResult("frozen", metrics, log, "accuracy").row()
    assert row["trainable_pct"] == 25.0 and row["before_accuracy"] == 0.5 and row["accuracy"] == 0.9
    assert "steps" not in row


def test_setup_notes_name_the_batch_rule_in_use() -> None:
    base = {"train": "t.jsonl", "output": "out"}
    by_count = " ".join(setup_notes(build_config(base, {"batch_size": 16}), ["full"]))
    by_tokens = " ".join(setup_notes(build_config(base, {"batch_tokens": 4096}), ["full"]))
    assert "batch size (16)" in by_count and "token budget" not in by_count
    assert "token budget per micro-batch (4096)" in by_tokens and "batch size" not in by_tokens
